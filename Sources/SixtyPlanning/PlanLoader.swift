import SixtyCore
import SixtyPlaybook
import SixtyPolicy

/// Loads a playbook, its inventory and the organisation policy, and plans them: the shared path of
/// `sixty validate`, `sixty plan` and `sixty run`.
public enum PlanLoader {
  public struct Inputs: Sendable {
    public var playbookPath: String
    /// The playbook itself, when it is not a file (`sixty exec`); `playbookPath` then only names it.
    public var playbookText: String?
    public var inventoryPath: String?
    public var policyPath: String?
    public var options: PlanOptions
    /// An inventory already loaded (and resolved, for `source: aws-ec2`) from `inventoryPath`,
    /// with what loading it reported.
    public var resolvedInventory: (Inventory, [Diagnostic])?

    public init(playbookPath: String, inventoryPath: String?, policyPath: String?, options: PlanOptions) {
      self.playbookPath = playbookPath
      self.inventoryPath = inventoryPath
      self.policyPath = policyPath
      self.options = options
    }
  }

  public struct Outcome: Sendable {
    /// Nil when there is no inventory (validation of the playbook alone) or on errors.
    public var plan: Plan?
    public var playbook: Playbook?
    public var inventory: Inventory?
    /// Every diagnostic, warnings included, sorted by position.
    public var diagnostics: [Diagnostic]

    public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    /// 0 clean, 2 bad input, 3 refused by policy.
    public var exitCode: Int32 {
      if hasErrors { return DiagnosticsError(diagnostics).exitCode }
      return plan?.isRefused == true ? 3 : 0
    }
  }

  /// Loads and plans; never throws: problems come back as diagnostics.
  public static func load(_ inputs: Inputs) -> Outcome {
    var bag = DiagnosticBag()
    var options = inputs.options
    if let policyPath = inputs.policyPath {
      let (policy, diagnostics) = PolicyParser.load(path: policyPath)
      bag.append(contentsOf: diagnostics)
      options.organisationPolicy = policy
    }
    // The playbook as far as it reads: with errors, its plays are still planned below to find
    // unknown targets and variables in the same pass, but never returned.
    let (parsed, playbookDiagnostics) =
      inputs.playbookText.map { PlaybookParser.loadRecovering(text: $0, path: inputs.playbookPath) }
      ?? PlaybookParser.loadRecovering(path: inputs.playbookPath)
    let playbook = playbookDiagnostics.contains { $0.severity == .error } ? nil : parsed
    bag.append(contentsOf: playbookDiagnostics)
    var inventory: Inventory?
    if let (resolved, diagnostics) = inputs.resolvedInventory {
      bag.append(contentsOf: diagnostics)
      inventory = resolved
    } else if let inventoryPath = inputs.inventoryPath {
      let (loaded, diagnostics) = InventoryParser.load(path: inventoryPath)
      bag.append(contentsOf: diagnostics)
      inventory = loaded
    }
    var plan: Plan?
    if let playbook, let inventory, !bag.hasErrors {
      do {
        plan = try Planner.plan(playbook, inventory: inventory, options: options)
        bag.append(contentsOf: plan!.diagnostics)
        // One diagnostic per (play, task, reason), naming the hosts, so a fleet-wide refusal stays readable.
        var groups: [[String?]: [Refusal]] = [:]
        var order: [[String?]] = []
        for refusal in plan!.refusals {
          let key = [refusal.play, refusal.task, refusal.reason]
          if groups[key] == nil { order.append(key) }
          groups[key, default: []].append(refusal)
        }
        for key in order {
          let refusals = groups[key]!
          let first = refusals[0]
          let hosts = refusals.prefix(3).map(\.host).joined(separator: ", ")
          let more = refusals.count > 3 ? " and \(refusals.count - 3) more" : ""
          let noun = refusals.count == 1 ? "host" : "hosts"
          bag.append(
            .error(
              "policy refuses \(first.task.map { "task '\($0)' on " } ?? "")\(noun) \(hosts)\(more) in play '\(first.play)': \(first.reason).",
              at: refusalLocation(first, playbook: playbook), kind: .policy))
        }
      } catch {
        bag.append(contentsOf: error.diagnostics)
      }
    } else if let parsed, let inventory {
      // Later stages check what parsed, also when the policy has errors; a plan made with errors
      // around is never returned.
      do {
        bag.append(contentsOf: try Planner.plan(parsed, inventory: inventory, options: options).diagnostics)
      } catch {
        bag.append(contentsOf: error.diagnostics)
      }
    } else if playbook != nil, inputs.inventoryPath == nil {
      bag.append(.note("no inventory given (-i): targets and variables were not checked.", at: nil))
    }
    return Outcome(plan: plan, playbook: playbook, inventory: inventory, diagnostics: bag.sorted)
  }

  static func refusalLocation(_ refusal: Refusal, playbook: Playbook) -> SourceLocation? {
    guard let play = playbook.plays.first(where: { $0.name == refusal.play }) else { return nil }
    if let task = refusal.task { return play.tasks.first { $0.name == task }?.location }
    return play.hostsLocation
  }
}
