import ArgumentParser
import Foundation
import SixtyCalendar
import SixtyCore
import SixtyEC2
import SixtyPlanning
import SixtyPolicy
import SixtyRun

/// Output formats of `sixty plan`.
enum PlanFormat: String, ExpressibleByArgument, CaseIterable {
  case text, json, dot
}

struct PlanCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "plan",
    abstract:
      "Preview a run: targets, rolling batches, per-host task order, rendered commands and policy verdicts.",
    discussion: "Nothing is run and no key is pushed. Exit status: 0 ok, 2 bad input, 3 refused by policy.")

  @OptionGroup var options: PlaybookOptions

  @Option(name: .long, help: "Output format: text, json or dot.")
  var format: PlanFormat = .text

  @Flag(
    name: .long, help: "Also check EC2 targets' state and SSH security-group rules (see sixty preflight).")
  var preflight = false

  @OptionGroup var preflightOptions: PreflightOptions

  func run() async throws {
    guard options.inputs.inventoryPath != nil else {
      throw ValidationError("sixty plan needs an inventory: pass -i INVENTORY (or set SIXTY_INVENTORY).")
    }
    let inputs = await InventoryResolver.load(options.inputs, ec2: options.ec2.settings)
    let outcome = PlanLoader.load(inputs)
    printDiagnostics(outcome.diagnostics.filter { $0.kind != .policy || outcome.plan == nil })
    guard let plan = outcome.plan else { throw ExitCode(outcome.exitCode) }
    var findings: [PreflightFinding] = []
    if preflight {
      findings = try await PreflightCheck.run(
        plan: plan, inputs: inputs, options: preflightOptions, ec2: options.ec2)
    }
    switch format {
    case .json:
      // With --preflight, the plan object has a "preflight" array added at its end.
      let findings = findings
      writeStandardOutput(
        PlanJSONRenderer.render(
          plan, pretty: false,
          adding: preflight
            ? { w in
              w.key("preflight")
              PreflightCheck.json(findings, into: &w)
            } : nil))
    case .text:
      var text = PlanTextRenderer.render(plan) + Self.windowStates(plan)
      if preflight {
        let hosts = Set(plan.plays.flatMap { $0.hosts.filter { $0.batch != nil }.map(\.host.name) }).count
        text += PreflightCheck.text(findings, hosts: hosts)
      }
      writeStandardOutput(Array(text.utf8))
    case .dot: writeStandardOutput(Array(PlanDotRenderer.render(plan).utf8))
    }
    if findings.contains(where: { $0.severity == .error }) { throw ExitCode(3) }
    throw ExitCode(outcome.exitCode)
  }

  /// Each maintenance window's state now: open until when, or when it opens next.
  static func windowStates(_ plan: Plan, now: Date = Date()) -> String {
    var text = ""
    var seen = Set<String>()
    for play in plan.plays {
      for (window, owner) in play.policy.windows.map({ ($0, "play '\(play.name)'") })
        + play.policy.organisationWindows.map({ ($0, "organisation") })
      {
        let key = "\(owner)/\(window.name)"
        guard seen.insert(key).inserted else { continue }
        let local = ISO8601DateFormatter()
        local.timeZone = TimeZone(identifier: window.timeZone) ?? TimeZone(identifier: "UTC")!
        let line: String
        do {
          let state = try WindowEvaluator.state(of: window, at: now)
          if state.isOpen, let cutoff = state.startCutoff, let closes = state.closes {
            line =
              cutoff > now
              ? "open now; hosts may start until \(local.string(from: cutoff)), it closes at \(local.string(from: closes))"
              : "open, but past its cutoff (\(local.string(from: cutoff))); it closes at \(local.string(from: closes))"
          } else if let next = state.nextOpening {
            line = "closed; next opens \(local.string(from: next))"
          } else {
            line = "closed; no opening within a year"
          }
        } catch {
          line = "cannot be evaluated: \(error.description)"
        }
        if text.isEmpty {
          text = "\nMaintenance windows (now \(ISO8601DateFormatter().string(from: now))):\n"
        }
        text += "  \(window.name) (\(owner)): \(line)\n"
      }
    }
    return text
  }
}
