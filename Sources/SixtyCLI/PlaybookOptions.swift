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

  @Option(name: [.customShort("i"), .long], help: "The inventory file (YAML).")
  var inventory: String?

  @Option(name: .long, help: "The organisation policy file; it caps the playbook's own policy.")
  var policy: String?

  @Option(name: .long, help: "Only target hosts matching this selector (group, host, tag=value, glob).")
  var limit: String?

  @Option(
    name: [.customShort("e"), .customLong("extra-var")],
    help: "Set a variable (KEY=VALUE); repeatable; wins over every other definition.")
  var extraVars: [String] = []

  @Flag(name: .long, help: "Approve hosts that policy marks as requiring approval.")
  var approve = false

  @OptionGroup var ec2: EC2Options

  func validate() throws {
    for entry in extraVars {
      guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
        throw ValidationError(
          "The extra variable '\(entry)' is not KEY=VALUE; expected something like -e version=1.2.")
      }
      let key = String(entry[..<equals])
      guard key.first.map({ $0 == "_" || $0.isLetter }) ?? false,
        key.allSatisfy({ $0 == "_" || $0.isLetter || $0.isNumber }), key != "host"
      else {
        throw ValidationError(
          "The extra variable name '\(key)' is not valid; expected letters, digits and '_' (and not 'host').")
      }
    }
    if let limit {
      do {
        _ = try HostSelector(parsing: limit)
      } catch {
        throw ValidationError("--limit: \(error.message)")
      }
    }
  }

  /// `-e KEY=VALUE` as given (checked by `validate()`).
  var extraVariables: [ExtraVariable] {
    extraVars.map { entry in
      let equals = entry.firstIndex(of: "=")!
      return ExtraVariable(
        name: String(entry[..<equals]), value: String(entry[entry.index(after: equals)...]))
    }
  }

  /// The playbook part of a run request.
  func apply(to request: inout RunRequest) {
    request.inventory = inventory
    request.policy = policy
    request.limit = limit.map(HostLimit.selector)
    request.extraVars = extraVariables
    request.approve = approve
    request.ec2 = ec2.settings
  }

  var inputs: PlanLoader.Inputs {
    var vars: [String: Value] = [:]
    for entry in extraVars {
      let equals = entry.firstIndex(of: "=")!
      vars[String(entry[..<equals])] = .string(String(entry[entry.index(after: equals)...]))
    }
    let user = ProcessInfo.processInfo.environment["USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "root"
    let options = PlanOptions(
      extraVars: vars, limit: limit.flatMap { try? HostSelector(parsing: $0) }, approve: approve,
      defaultUser: user)
    return PlanLoader.Inputs(
      playbookPath: playbook,
      inventoryPath: inventory ?? ProcessInfo.processInfo.environment["SIXTY_INVENTORY"],
      policyPath: policy ?? ProcessInfo.processInfo.environment["SIXTY_POLICY"], options: options)
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

  var settings: EC2Settings { EC2Settings(endpoint: ec2Endpoint, refresh: refresh, pageSize: pageSize) }
}
