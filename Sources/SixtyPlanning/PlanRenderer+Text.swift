import SixtyCore
import SixtyPlaybook
import SixtyPolicy

/// Renders plans for people: per play its policy, batches, task order, and each host's
/// rendered commands (hosts with identical steps are shown once).
public enum PlanTextRenderer {
  public static func render(_ plan: Plan) -> String {
    var out = "Plan for \(plan.playbookPath)"
    if let inventory = plan.inventoryPath { out += " with inventory \(inventory)" }
    out += "\n"
    if let shard = plan.shard {
      let mine = Set(plan.plays.flatMap { $0.hosts.map(\.host.name) }).count
      out +=
        "Shard \(shard): \(mine) of the run's \(plan.runTargets) target\(plan.runTargets == 1 ? "" : "s") (batches are this shard's; the failure threshold is the run's)\n"
    }
    var totalRuns = 0
    var totalSkipped = 0
    for (number, play) in plan.plays.enumerated() {
      let runnable = play.hosts.filter { $0.refusal == nil }
      out += "\nPlay \(number + 1): \(play.name)\n"
      out += "  hosts: '\(play.selector)' -> \(play.hosts.count) host\(play.hosts.count == 1 ? "" : "s")"
      if runnable.count != play.hosts.count { out += " (\(play.hosts.count - runnable.count) refused)" }
      out += "\n"
      out += "  policy: \(policySummary(play, hostCount: runnable.count))\n"
      for window in play.policy.windows {
        out += "  window: \(windowSummary(window)) (play)\n"
      }
      for window in play.policy.organisationWindows {
        out += "  window: \(windowSummary(window)) (organisation)\n"
      }
      out += "  order: \(play.graph.order.map { play.tasks[$0].name }.joined(separator: " -> "))\n"
      let deps = play.graph.dependencies.enumerated().filter { !$0.element.isEmpty }
      if !deps.isEmpty {
        out +=
          "  needs: "
          + deps.map {
            "\(play.tasks[$0.offset].name) <- \($0.element.map { play.tasks[$0].name }.joined(separator: ", "))"
          }
          .joined(separator: "; ") + "\n"
      }
      for (b, batch) in play.batches.enumerated() {
        out +=
          "  batch \(b + 1)/\(play.batches.count) (\(batch.count)): \(batch.map { play.hosts[$0].host.name }.joined(separator: " "))\n"
      }
      let ttl = play.policy.keyTTL
      let margin = play.policy.keyMargin
      out +=
        "  keys: \(keyDescription(play.policy.keyType)), pushed for each host's user when its slot opens (up to \(play.policy.concurrency) at a time); valid \(ttl), pushed again if authentication has not begun within \(TimeSpan(milliseconds: ttl.milliseconds - margin.milliseconds)).\n"
        + "  login: \(modeDescription(play.policy.loginMode)).\n"
        + "  pacing: \(pacingDescription(play.policy)).\n"
      // Group hosts whose steps are identical.
      var groups: [(hosts: [Int], key: [PlannedStep])] = []
      var groupIndex: [[PlannedStep]: Int] = [:]
      for (i, hostPlan) in play.hosts.enumerated() {
        if let g = groupIndex[hostPlan.steps], hostPlan.refusal == nil,
          play.hosts[groups[g].hosts[0]].refusal == nil,
          play.hosts[groups[g].hosts[0]].user == hostPlan.user
        {
          groups[g].hosts.append(i)
        } else {
          groupIndex[hostPlan.steps] = groups.count
          groups.append(([i], hostPlan.steps))
        }
      }
      for group in groups {
        let first = play.hosts[group.hosts[0]]
        out += "\n  \(first.host.name) (\(first.host.address):\(first.host.port), user \(first.user)"
        if let batch = first.batch { out += ", batch \(batch + 1)" }
        out += ")"
        if group.hosts.count > 1 {
          let others = group.hosts.dropFirst().map { play.hosts[$0].host.name }
          let shown = others.prefix(8).joined(separator: ", ")
          out += " and \(others.count) more with the same steps: \(shown)\(others.count > 8 ? ", …" : "")"
        }
        out += "\n"
        if let refusal = first.refusal {
          out += "    REFUSED: \(refusal)\n"
          continue
        }
        var n = 0
        for step in first.steps {
          let task = play.tasks[step.task]
          switch step.status {
          case .run:
            n += 1
            totalRuns += group.hosts.count
            out +=
              "    \(n). \(task.name): \(step.rendered.map(describe) ?? "")\(options(task, play.policy))\n"
          case .skipped(let reason):
            totalSkipped += group.hosts.count
            out += "    -  \(task.name): skipped (\(reason))\n"
          case .refused(let reason):
            out += "    !  \(task.name): REFUSED: \(reason)\n"
          }
        }
      }
    }
    if !plan.refusals.isEmpty {
      out += "\nRefused by policy (\(plan.refusals.count)):\n"
      for refusal in plan.refusals.prefix(50) {
        out += "  \(refusal.host)\(refusal.task.map { " task '\($0)'" } ?? ""): \(refusal.reason)\n"
      }
      if plan.refusals.count > 50 { out += "  … and \(plan.refusals.count - 50) more\n" }
    }
    let hosts = Set(plan.plays.flatMap { $0.hosts.map(\.host.name) }).count
    out +=
      "\n\(plan.plays.count) play\(plan.plays.count == 1 ? "" : "s"), \(hosts) host\(hosts == 1 ? "" : "s"), \(totalRuns) task run\(totalRuns == 1 ? "" : "s"), \(totalSkipped) skipped."
    out += plan.isRefused ? " Policy refuses this run.\n" : " Nothing has run: this is a preview.\n"
    return out
  }

  static func describe(_ task: RenderedTask) -> String {
    var text: String
    switch task.action {
    case .command(let argv): text = "command: " + argv.map(ShellQuote.quote).joined(separator: " ")
    case .shell(let line): text = "shell: " + line.replacingNewlines()
    case .script(let path, _): text = "script: \(path) (sent over stdin)"
    case .upload(let source, _, let destination, let mode):
      text = "upload: \(source) -> \(destination)\(mode.map { " mode \($0)" } ?? "")"
    }
    if !task.env.isEmpty { text += "  env: " + task.env.joined(separator: " ") }
    if let cwd = task.cwd { text += "  cwd: \(cwd)" }
    return text
  }

  static func options(_ task: PlaybookTask, _ policy: EffectivePolicy) -> String {
    var parts: [String] = []
    if task.become { parts.append("become" + (task.becomeUser.map { " \($0)" } ?? "")) }
    if let timeout = task.timeout { parts.append("timeout \(timeout)") }
    let retries = task.retries ?? policy.retries
    if retries > 0 { parts.append("retries \(retries) every \(task.retryDelay ?? policy.retryDelay)") }
    if task.okCodes != [0] {
      parts.append("ok codes \(task.okCodes.map(String.init).joined(separator: ","))")
    }
    if task.onFailure != .abortHost { parts.append("on failure: \(task.onFailure.rawValue)") }
    return parts.isEmpty ? "" : "  [\(parts.joined(separator: ", "))]"
  }

  static func policySummary(_ play: PlayPlan, hostCount: Int) -> String {
    let p = play.policy
    var parts = ["concurrency \(p.concurrency)"]
    let sizes = p.batchSizes(for: hostCount)
    if !p.batches.isEmpty || !p.orgBatches.isEmpty {
      parts.append(
        "batches [\(p.batches.map(\.description).joined(separator: ", "))] -> \(sizes.map(String.init).joined(separator: ", "))"
      )
    }
    if let threshold = play.failureThreshold {
      parts.append("abort when more than \(threshold) host\(threshold == 1 ? "" : "s") fail")
    }
    parts.append("task timeout \(p.taskTimeout)")
    if let run = p.runTimeout { parts.append("run timeout \(run)") }
    parts.append("connect timeout \(p.connectTimeout)")
    if p.retries > 0 { parts.append("retries \(p.retries)") }
    if p.hostParallelism > 1 { parts.append("\(p.hostParallelism) tasks at once per host") }
    parts.append("host keys \(p.hostKeyPolicy.rawValue)")
    if p.sshClient == .openssh { parts.append("ssh client openssh") }
    parts.append(
      p.hostLock == .wait ? "busy hosts: wait \(p.lockTimeout)" : "busy hosts: refuse")
    return parts.joined(separator: ", ")
  }

  static func windowSummary(_ window: MaintenanceWindow) -> String {
    "\(window.name): '\(window.schedule)' \(window.timeZone) for \(window.duration)\(window.cutoff.milliseconds > 0 ? ", no new host in the last \(window.cutoff)" : "")"
  }

  /// The key line's start: the policy's type, or the endpoint's choice.
  static func keyDescription(_ type: LoginKeyType?) -> String {
    guard let type else {
      return
        "one ephemeral key for the run, of the fastest type the endpoint takes (ECDSA P-256 for a sixty broker, which says so when asked; RSA 2048 for AWS and other Instance Connect endpoints; push.key_type overrides)"
    }
    return "one ephemeral \(type.description) key for the run (push.key_type)"
  }

  /// Pushed keys or certificates, and who chose.
  public static func modeDescription(_ mode: LoginMode?) -> String {
    switch mode {
    case .key?: "pushed keys (push.mode), checked by each host's AuthorizedKeysCommand at login"
    case .certificate?:
      "60-second certificates signed by the broker for the run's key, one per host and user (push.mode), checked by the host alone (TrustedUserCAKeys)"
    case nil:
      "as the endpoint prefers: certificates from a sixty broker that is a certificate authority and says so, pushed keys otherwise (push.mode overrides)"
    }
  }

  /// How pushes are paced: adaptively, under the policy's ceiling if it sets one.
  public static func pacingDescription(_ policy: EffectivePolicy) -> String {
    let adaptive =
      "adaptive, shared by every host of the run: pushes go out as fast as hosts need them until the endpoint throttles, then follow the rate it takes (lowered by 30 % on throttling, grown back along a cubic curve, as the AWS SDKs' adaptive retry mode)"
    guard let rate = policy.pushRate else { return adaptive + "; no ceiling (push.rate sets one)" }
    return adaptive
      + "; never above \(formatRate(rate)) (push.rate, burst \(policy.pushBurst ?? defaultBurst(rate)))"
  }

  /// The burst of a policy's ceiling that sets a rate and no burst: one second's worth.
  public static func defaultBurst(_ rate: Double) -> Int { max(1, Int(rate.rounded(.up))) }

  static func formatRate(_ rate: Double) -> String {
    rate == rate.rounded() ? "\(Int(rate)) pushes/s" : "\(rate) pushes/s"
  }
}

extension String {
  func replacingNewlines() -> String {
    utf8.contains(UInt8(ascii: "\n"))
      ? split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " ⏎ ") : self
  }
}
