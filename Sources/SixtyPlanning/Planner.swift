import Foundation
import SixtyCore
import SixtyPlaybook
import SixtyPolicy

/// Options that shape a plan.
public struct PlanOptions: Sendable {
  public var extraVars: [String: Value]
  public var limit: HostSelector?
  public var approve: Bool
  public var organisationPolicy: Policy?
  /// The OS user for hosts that name none.
  public var defaultUser: String
  /// Whether the run pushes each host's key through EC2 Instance Connect (or a broker) before it
  /// connects, as every run does: each targeted host then needs an `instance_id`.
  public var pushesKeys = true
  /// The remote user for every host, over the inventory's (`-u`).
  public var remoteUser: String?
  /// `--shard I/N`: plan only this shard's part of the targets (after `--limit`).
  public var shard: Shard?

  public init(
    extraVars: [String: Value] = [:], limit: HostSelector? = nil, approve: Bool = false,
    organisationPolicy: Policy? = nil, defaultUser: String = "root"
  ) {
    self.extraVars = extraVars
    self.limit = limit
    self.approve = approve
    self.organisationPolicy = organisationPolicy
    self.defaultUser = defaultUser
  }
}

/// Turns a playbook, an inventory and policy into a `Plan`. Pure: no I/O beyond reading scripts
/// for command rules.
public enum Planner {
  /// Builds the plan.
  /// - Throws: `DiagnosticsError` when the inputs cannot be planned (unknown variables, empty targets…).
  ///   Policy refusals do not throw: they are part of the plan.
  public static func plan(_ playbook: Playbook, inventory: Inventory, options: PlanOptions)
    throws(DiagnosticsError) -> Plan
  {
    var diagnostics = DiagnosticBag()
    var plays: [PlayPlan] = []
    var refusals: [Refusal] = []
    let limited = options.limit.map { limit in
      Result { () throws(Inventory.UnknownName) in try inventory.select(limit) }
    }
    var limitNames: Set<String>?
    if let limited {
      switch limited {
      case .success(let hosts):
        limitNames = Set(hosts.map(\.name))
        if hosts.isEmpty, let limit = options.limit {
          diagnostics.error(
            "--limit '\(limit.text)' matched no host of \(inventory.source ?? "the inventory")\(inventory.emptySelectionHint(limit, repeating: "pass --limit once for each")); expected at least one host.",
            at: nil)
        }
      case .failure(let unknown):
        diagnostics.error(
          "--limit names '\(unknown.name)', which is neither a group nor a host of the inventory\(unknown.suggestion.map { "; did you mean '\($0)'?" } ?? ".")",
          at: nil)
      }
    }
    var selected: [(play: Play, policy: EffectivePolicy, targets: [InventoryHost])] = []
    for play in playbook.plays {
      let (policy, policyDiagnostics) = PolicyResolver.resolve(
        organisation: options.organisationPolicy, play: play.policy)
      diagnostics.append(contentsOf: policyDiagnostics)
      var targets: [InventoryHost]
      do throws(Inventory.UnknownName) {
        targets = try inventory.select(play.hosts)
      } catch {
        diagnostics.error(
          "the play '\(play.name)' targets '\(error.name)', which is neither a group nor a host of \(inventory.source ?? "the inventory")\(error.suggestion.map { "; did you mean '\($0)'?" } ?? ".")",
          at: play.hostsLocation)
        continue
      }
      if let limitNames { targets = targets.filter { limitNames.contains($0.name) } }
      if targets.isEmpty {
        // An empty --limit was reported once, above.
        if limitNames?.isEmpty == true { continue }
        let hint =
          limitNames == nil
          ? inventory.emptySelectionHint(play.hosts, repeating: "list them under 'hosts:'") : ""
        let because = limitNames != nil ? " after --limit" : ""
        diagnostics.error(
          "the play '\(play.name)' targets no hosts: '\(play.hosts.text)' matched nothing in \(inventory.source ?? "the inventory")\(because)\(hint); expected at least one host.",
          at: play.hostsLocation)
        continue
      }
      selected.append((play, policy, targets))
    }
    // Every shard ranks the same targets: the union of the plays' hosts after --limit.
    let runTargets = Set(selected.flatMap { $0.targets.map(\.name) })
    let members = options.shard.map { $0.members(of: runTargets) }
    for (play, policy, targets) in selected {
      var builder = PlayBuilder(play: play, policy: policy, inventory: inventory, options: options)
      let playPlan = builder.build(targets, shardMembers: members)
      diagnostics.append(contentsOf: builder.diagnostics())
      refusals.append(contentsOf: builder.refusals)
      // A shard may hold none of a play's hosts: the play stays (empty), so that every shard
      // numbers the plays alike.
      plays.append(playPlan)
    }
    if options.pushesKeys { diagnostics.append(contentsOf: missingInstanceIDs(plays)) }
    if diagnostics.hasErrors { throw DiagnosticsError(diagnostics.all) }
    return Plan(
      playbookPath: playbook.path, inventoryPath: inventory.source,
      policyPath: options.organisationPolicy?.source,
      plays: plays, refusals: refusals,
      diagnostics: diagnostics.all, shard: options.shard, runTargets: runTargets.count)
  }
}

extension Planner {
  /// How many hosts without an `instance_id` are named one by one; the rest are counted.
  static let missingInstanceIDLimit = 20

  /// One error per host that a key will be pushed to (targeted and not refused) but that has no
  /// `instance_id`, at the host's place in the inventory: the push would fail when its turn came.
  static func missingInstanceIDs(_ plays: [PlayPlan]) -> [Diagnostic] {
    var seen = Set<String>()
    var missing: [(host: InventoryHost, play: String)] = []
    for play in plays {
      for hostPlan in play.hosts where hostPlan.batch != nil && hostPlan.host.instanceID == nil {
        if seen.insert(hostPlan.host.name).inserted { missing.append((hostPlan.host, play.name)) }
      }
    }
    var diagnostics: [Diagnostic] = missing.prefix(missingInstanceIDLimit).map { host, play in
      .warning(
        "the host \(SafeText.quoted(host.name, limit: 80)) has no instance_id, and the play '\(play)' pushes its key through EC2 Instance Connect (or a broker) before connecting, so it will fail at its turn; expected 'instance_id: i-…' in its inventory entry (an aws-ec2 inventory gives every host one).",
        at: host.location)
    }
    if missing.count > missingInstanceIDLimit {
      let rest = missing.dropFirst(missingInstanceIDLimit)
      let names = rest.prefix(5).map { SafeText.quoted($0.host.name, limit: 80) }.joined(separator: ", ")
      diagnostics.append(
        .warning(
          "\(rest.count) more targeted hosts have no instance_id (\(names)\(rest.count > 5 ? ", …" : "")); expected 'instance_id: i-…' for each.",
          at: rest.first?.host.location))
    }
    return diagnostics
  }
}

/// Plans one play; keeps per-play caches (compiled command rules, script contents).
struct PlayBuilder {
  let play: Play
  let policy: EffectivePolicy
  let inventory: Inventory
  let options: PlanOptions
  let matcher: CommandMatcher
  var refusals: [Refusal] = []
  var unresolved: [Template.Expression: (task: String, hosts: [String])] = [:]
  var unresolvedOrder: [Template.Expression] = []
  /// Rendered values that hold a NUL byte (the first 100).
  var nulValues: [(template: Template, task: String, host: String)] = []
  var scriptContents: [String: String] = [:]

  init(play: Play, policy: EffectivePolicy, inventory: Inventory, options: PlanOptions) {
    self.play = play
    self.policy = policy
    self.inventory = inventory
    self.options = options
    self.matcher = CommandMatcher(policy.denyCommands)
  }

  /// The play's plan for `targets`, or for those of them in `shardMembers` (a shard's part):
  /// its failure threshold is then still a share of all the targets (every shard's), and
  /// `run_once` still means the first of all of them.
  mutating func build(_ targets: [InventoryHost], shardMembers: Set<String>? = nil) -> PlayPlan {
    var hostPlans: [HostPlan] = []
    hostPlans.reserveCapacity(targets.count)
    let firstHost = targets.first?.name
    for var host in targets {
      if let user = options.remoteUser { host.user = user }
      var plan = HostPlan(
        host: host, user: host.user ?? options.defaultUser, batch: nil, steps: [], refusal: nil)
      if !options.approve,
        let rule = policy.requireApproval.first(where: { Inventory.matches($0.selector, host) })
      {
        let reason =
          "the host matches '\(rule.selector.text)', which requires --approve\(rule.reason.map { " (\($0))" } ?? "")"
        plan.refusal = reason
        refusals.append(Refusal(play: play.name, host: host.name, task: nil, reason: reason))
      }
      let scope = scope(for: host)
      plan.steps.reserveCapacity(play.graph.order.count)
      for index in play.graph.order {
        plan.steps.append(step(index, host: host, firstHost: firstHost, scope: scope))
      }
      hostPlans.append(plan)
    }
    // Every shard plans every host, so that refusals and errors are the same in all of them (as
    // with one runner), then keeps its own.
    let allRunnable = hostPlans.filter { $0.refusal == nil }.count
    if let shardMembers { hostPlans.removeAll { !shardMembers.contains($0.host.name) } }
    let runnable = hostPlans.indices.filter { hostPlans[$0].refusal == nil }
    var batches: [[Int]] = []
    var cursor = 0
    for size in policy.batchSizes(for: runnable.count) {
      let batch = Array(runnable[cursor..<(cursor + size)])
      for i in batch { hostPlans[i].batch = batches.count }
      batches.append(batch)
      cursor += size
    }
    // An Instance Connect Endpoint takes a limited number of connections at once (20 on AWS):
    // the play never has more hosts connected than that.
    var effective = policy
    if let limit = runnable.compactMap({ hostPlans[$0].host.connectionLimit }).min(),
      limit < effective.concurrency
    {
      effective.concurrency = limit
    }
    return PlayPlan(
      name: play.name, selector: play.hosts.text, policy: effective, tasks: play.tasks, graph: play.graph,
      hosts: hostPlans, batches: batches,
      failureThreshold: policy.failureThreshold(for: allRunnable))
  }

  func scope(for host: InventoryHost) -> VariableScope {
    var layers: [[String: Value]] = []
    layers.reserveCapacity(4 + host.groups.count)
    if !options.extraVars.isEmpty { layers.append(options.extraVars) }
    if !play.vars.isEmpty { layers.append(play.vars) }
    if !host.vars.isEmpty { layers.append(host.vars) }
    for group in host.groups.reversed() {
      if let vars = inventory.groups[group]?.vars, !vars.isEmpty { layers.append(vars) }
    }
    if !inventory.vars.isEmpty { layers.append(inventory.vars) }
    return VariableScope(layers: layers, host: host)
  }

  mutating func step(_ index: Int, host: InventoryHost, firstHost: String?, scope: VariableScope)
    -> PlannedStep
  {
    let task = play.tasks[index]
    if task.runOnce, host.name != firstHost {
      return PlannedStep(
        task: index, status: .skipped("run_once: runs on \(firstHost ?? "the first host") only"),
        rendered: nil)
    }
    if let condition = task.when {
      do {
        if try !condition.evaluate(in: scope) {
          return PlannedStep(
            task: index, status: .skipped("when: \(task.whenText ?? "") is false"), rendered: nil)
        }
      } catch {
        record(error.expression, task: task.name, host: host.name)
        return PlannedStep(task: index, status: .skipped("when: unknown variable"), rendered: nil)
      }
    }
    guard let rendered = render(task, scope: scope, host: host.name) else {
      return PlannedStep(task: index, status: .skipped("unrendered"), rendered: nil)
    }
    if !matcher.isEmpty {
      let subject: CommandSubject =
        switch rendered.action {
        case .command(let argv): .argv(argv, text: rendered.display)
        case .shell(let text): .shell(text)
        case .script(_, let resolved): .shell(script(resolved))
        case .upload: .text(rendered.display)
        }
      if let refusal = matcher.refusal(for: subject) {
        let reason: String
        switch refusal {
        case .rule(let rule):
          reason =
            "the command matches the denied pattern \(rule.patternText)\(rule.reason.map { " (\($0))" } ?? "")\(rule.location.map { " at \($0)" } ?? "")"
        case .unparsable(let problem):
          reason =
            "the shell text cannot be checked against the deny rules: \(problem); quote it so it parses, or use command: with an argument list"
        }
        refusals.append(Refusal(play: play.name, host: host.name, task: task.name, reason: reason))
        return PlannedStep(task: index, status: .refused(reason), rendered: rendered)
      }
    }
    return PlannedStep(task: index, status: .run, rendered: rendered)
  }

  mutating func script(_ path: String) -> String {
    if let cached = scriptContents[path] { return cached }
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    scriptContents[path] = text
    return text
  }

  mutating func render(_ task: PlaybookTask, scope: VariableScope, host: String) -> RenderedTask? {
    var failed = false
    func r(_ template: Template, _ builder: inout PlayBuilder) -> String {
      do {
        let text = try template.render(in: scope)
        // No command line, environment variable or file name can carry a NUL byte: ssh and
        // execve would cut the string there.
        if text.utf8.contains(0) {
          builder.recordNUL(template, task: task.name, host: host)
          failed = true
        }
        return text
      } catch {
        builder.record(error.expression, task: task.name, host: host)
        failed = true
        return ""
      }
    }
    let action: RenderedTask.Action
    switch task.action {
    case .command(let argv): action = .command(argv.map { r($0, &self) })
    case .shell(let template): action = .shell(r(template, &self))
    case .script(let path, let resolved): action = .script(path: path, resolvedPath: resolved)
    case .upload(let source, let resolved, let destination, let mode):
      action = .upload(
        source: source, resolvedSource: resolved, destination: r(destination, &self), mode: mode)
    }
    let env = task.env.map { "\($0.key)=\(r($0.value, &self))" }
    let cwd = task.cwd.map { r($0, &self) }
    return failed ? nil : RenderedTask(action: action, env: env, cwd: cwd)
  }

  mutating func recordNUL(_ template: Template, task: String, host: String) {
    if nulValues.count < 100 { nulValues.append((template, task, host)) }
  }

  mutating func record(_ expression: Template.Expression, task: String, host: String) {
    if unresolved[expression] == nil {
      unresolved[expression] = (task, [])
      unresolvedOrder.append(expression)
    }
    unresolved[expression]!.hosts.append(host)
  }

  func diagnostics() -> [Diagnostic] {
    unresolvedDiagnostics()
      + nulValues.map {
        .error(
          "the value of \(SafeText.quoted($0.template.source, limit: 60)) in task '\($0.task)' for host \($0.host) contains a NUL byte, which no command line, environment variable or path can carry; remove it from the variable.",
          at: $0.template.location)
      }
  }

  func unresolvedDiagnostics() -> [Diagnostic] {
    unresolvedOrder.map { expression in
      let (task, hosts) = unresolved[expression]!
      let name = expression.path.joined(separator: ".")
      let scopeNames = Set(play.vars.keys).union(options.extraVars.keys).union(inventory.vars.keys)
        .union(inventory.groups.values.flatMap { $0.vars.keys }).union(
          inventory.hosts.flatMap { $0.vars.keys })
      let hint: String
      if expression.path.first == "host" {
        let facts = [
          "host.name", "host.address", "host.port", "host.user", "host.instance_id", "host.zone", "host.tags",
          "host.groups",
        ]
        if expression.path.count >= 3, expression.path[1] == "tags" {
          hint =
            "; the tag '\(expression.path[2])' is not set on \(hosts.count == 1 ? "that host" : "those hosts") (use '| default(…)' for optional tags)"
        } else {
          hint = Suggestion.hint(for: name, in: facts)
        }
      } else {
        hint = Suggestion.hint(for: expression.path[0], in: scopeNames)
      }
      let others = hosts.count > 1 ? " and \(hosts.count - 1) other host\(hosts.count == 2 ? "" : "s")" : ""
      let remedy =
        expression.path.first == "host"
        ? "" : "; define it in the play's vars, the inventory, or with -e \(expression.path[0])=VALUE"
      return .error(
        "unknown variable '\(name)' in task '\(task)' for host \(hosts[0])\(others)\(hint)\(remedy).",
        at: expression.location)
    }
  }
}

extension Inventory {
  /// Whether `host` is selected by `selector` (groups, names, tags and globs).
  public static func matches(_ selector: HostSelector, _ host: InventoryHost) -> Bool {
    selector.matches(tags: host.tags) { host.groups.contains($0) || Glob.matches($0, host.name) }
  }
}
