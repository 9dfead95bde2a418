import ArgumentParser
import SixtyPlanning

/// Output formats of `sixty plan`.
enum PlanFormat: String, ExpressibleByArgument, CaseIterable {
  case text, json, dot
}

struct PlanCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "plan",
    abstract:
      "Preview a run: targets, rolling batches, per-host task order, rendered commands and policy verdicts.",
    discussion: "Nothing is run and no key is pushed. Exit status: 0 ok, 2 bad input, 3 refused by policy.")

  @OptionGroup var options: PlaybookOptions

  @Option(name: .long, help: "Output format: text, json or dot.")
  var format: PlanFormat = .text

  func run() throws {
    guard options.inputs.inventoryPath != nil else {
      throw ValidationError("sixty plan needs an inventory: pass -i INVENTORY (or set SIXTY_INVENTORY).")
    }
    let outcome = PlanLoader.load(options.inputs)
    printDiagnostics(outcome.diagnostics.filter { $0.kind != .policy || outcome.plan == nil })
    guard let plan = outcome.plan else { throw ExitCode(outcome.exitCode) }
    switch format {
    case .json: writeStandardOutput(PlanJSONRenderer.render(plan, pretty: false))
    case .text: writeStandardOutput(Array(PlanTextRenderer.render(plan).utf8))
    case .dot: writeStandardOutput(Array(PlanDotRenderer.render(plan).utf8))
    }
    throw ExitCode(outcome.exitCode)
  }
}
