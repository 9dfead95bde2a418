import ArgumentParser
import Foundation
import SixtyCore
import SixtyPlanning
import SixtyPlaybook
import SixtyRun

/// Options shared by the commands that read a playbook.
struct PlaybookOptions: ParsableArguments {
  @Argument(help: "The playbook file (YAML).")
  var playbook: String

  @OptionGroup var files: InventoryOptions

  @OptionGroup var limits: LimitOptions

  @OptionGroup var variables: VariableOptions
  @OptionGroup var ec2: EC2Options

  /// The playbook part of a run request.
  func apply(to request: inout RunRequest) {
    files.apply(to: &request)
    request.limit = limits.hostLimit
    variables.apply(to: &request)
    request.ec2 = ec2.settings
  }

  /// What `validate`, `plan` and `preflight` load.
  var inputs: PlanLoader.Inputs {
    var request = RunRequest(source: .playbook(path: playbook))
    apply(to: &request)
    return Runner.inputs(request)
  }
}

extension PlaybookOptions {
  /// Loads and plans for `sixty command` (an inventory is required), printing the diagnostics: the
  /// plan, the inputs it was made from (the EC2 inventory resolved) and the loader's exit code.
  /// - Throws: `ExitCode` with the loader's code when there is no plan.
  func plan(for command: String) async throws -> (Plan, PlanLoader.Inputs, Int32) {
    guard inputs.inventoryPath != nil else {
      throw ValidationError(
        "sixty \(command) needs an inventory: pass -i INVENTORY (or set SIXTY_INVENTORY).")
    }
    let inputs = await InventoryResolver.load(inputs, ec2: ec2.settings)
    let outcome = PlanLoader.load(inputs)
    printDiagnostics(outcome.diagnostics.filter { $0.kind != .policy || outcome.plan == nil })
    guard let plan = outcome.plan else { throw ExitCode(outcome.exitCode) }
    return (plan, inputs, outcome.exitCode)
  }
}

/// `--limit`/`-l`, repeatable: the union of the selectors.
struct LimitOptions: ParsableArguments {
  @Option(
    name: [.customShort("l"), .long],
    help:
      "Only target hosts matching this selector (group, host, tag=value, glob; a:b, a:&b, a:!b); repeatable: the union."
  )
  var limit: [String] = []

  func validate() throws {
    for limit in limit {
      do {
        _ = try HostSelector(parsing: limit)
      } catch {
        throw ValidationError("--limit: \(error.message)")
      }
    }
  }

  var hostLimit: HostLimit? { HostLimit(limits: limit) }
}

/// Where the hosts and the organisation policy come from.
struct InventoryOptions: ParsableArguments {
  @Option(
    name: [.customShort("i"), .long],
    help:
      "The inventory: Sixty or Ansible YAML, Ansible INI, a pssh hosts file, or a list like 'web1,web2,'; default: SIXTY_INVENTORY."
  )
  var inventory: String?

  @Option(name: .long, help: "The organisation policy file; it caps the playbook's own policy.")
  var policy: String?

  /// The inventory given or in the environment, for commands that need one.
  func require(_ command: String) throws {
    guard inventory != nil || ProcessInfo.processInfo.environment["SIXTY_INVENTORY"] != nil else {
      throw ValidationError(
        "sixty \(command) needs an inventory: pass -i INVENTORY (or set SIXTY_INVENTORY).")
    }
  }

  func apply(to request: inout RunRequest) {
    request.inventory = inventory
    request.policy = policy
  }
}

/// `-e KEY=VALUE` and `--approve`.
struct VariableOptions: ParsableArguments {
  @Option(
    name: [.customShort("e"), .customLong("extra-var")],
    help:
      "Set variables: KEY=VALUE, @FILE (YAML or JSON) or a JSON object; repeatable, the later wins; wins over every other definition."
  )
  var extraVars: [String] = []

  @Flag(name: .long, help: "Approve hosts that policy marks as requiring approval.")
  var approve = false

  func validate() throws {
    for entry in extraVars {
      do {
        _ = try ExtraVariable.parseAll(entry)
      } catch {
        throw ValidationError(error.message)
      }
    }
  }

  func apply(to request: inout RunRequest) {
    request.extraVars = extraVars.flatMap { (try? ExtraVariable.parseAll($0)) ?? [] }
    request.approve = approve
  }
}

/// Prints diagnostics to standard error, one per line.
func printDiagnostics(_ diagnostics: [Diagnostic]) { TerminalConsole.printDiagnostics(diagnostics) }

/// How an `aws-ec2` inventory reaches EC2: options shared by every command that reads one.
struct EC2Options: ParsableArguments {
  @Option(
    name: .customLong("ec2-endpoint"),
    help: "The EC2 API endpoint (default: AWS_ENDPOINT_URL_EC2, else AWS's).")
  var ec2Endpoint: String?

  @Flag(
    name: .customLong("refresh-inventory"), help: "Ignore the EC2 inventory cache and list instances again.")
  var refresh = false

  /// For tests of paging: instances per DescribeInstances page.
  @Option(name: .customLong("ec2-page-size"), help: .hidden)
  var pageSize: Int = 1000

  func validate() throws {
    guard pageSize >= 5 && pageSize <= 1000 else {
      throw ValidationError("--ec2-page-size must be 5 to 1000, not \(pageSize).")
    }
  }

  var settings: EC2Settings {
    var settings = EC2Settings()
    settings.endpoint = ec2Endpoint
    settings.refresh = refresh
    settings.pageSize = pageSize
    return settings
  }
}
