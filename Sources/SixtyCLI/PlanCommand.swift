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
    let (plan, inputs, exitCode) = try await options.plan(for: "plan")
    var findings: [PreflightFinding] = []
    if preflight {
      findings = try await PreflightCheck.run(
        plan: plan, inputs: inputs, settings: preflightOptions.settings(ec2: options.ec2))
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
      var text = PlanTextRenderer.render(plan) + MaintenanceWindows.states(plan, now: Date())
      if preflight {
        let hosts = Set(plan.plays.flatMap { $0.hosts.filter { $0.batch != nil }.map(\.host.name) }).count
        text += PreflightCheck.text(findings, hosts: hosts)
      }
      writeStandardOutput(Array(text.utf8))
    case .dot: writeStandardOutput(Array(PlanDotRenderer.render(plan).utf8))
    }
    if findings.contains(where: { $0.severity == .error }) { throw ExitCode(3) }
    throw ExitCode(exitCode)
  }
}
