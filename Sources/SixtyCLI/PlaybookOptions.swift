import ArgumentParser
import Foundation
import SixtyCore
import SixtyPlanning
import SixtyPlaybook

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
    guard ec2.pageSize >= 5 && ec2.pageSize <= 1000 else {
      throw ValidationError("--ec2-page-size must be 5 to 1000, not \(ec2.pageSize).")
    }
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
func printDiagnostics(_ diagnostics: [Diagnostic]) {
  guard !diagnostics.isEmpty else { return }
  var text = diagnostics.map(\.description).joined(separator: "\n")
  text += "\n"
  let errors = diagnostics.filter { $0.severity == .error }.count
  let warnings = diagnostics.filter { $0.severity == .warning }.count
  if errors + warnings > 1 {
    text += "\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s").\n"
  }
  FileHandle.standardError.write(Data(text.utf8))
}

/// Writes bytes to standard output in large chunks.
func writeStandardOutput(_ bytes: [UInt8]) {
  bytes.withUnsafeBytes { buffer in
    var offset = 0
    while offset < buffer.count {
      let written = write(1, buffer.baseAddress! + offset, buffer.count - offset)
      if written <= 0 {
        if written < 0 && errno == EINTR { continue }
        return
      }
      offset += written
    }
  }
}
