import ArgumentParser
import Foundation
import SixtyAudit

struct AuditCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "audit",
    abstract: "Check or read a hash-chained audit log.",
    subcommands: [Verify.self, Show.self])

  struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Verify the chain of an audit log; names the first edited, reordered or missing record.",
      discussion: "Exit status: 0 when intact, 1 when the chain is broken, 2 when the file cannot be read.")

    @Argument(help: "The audit log (JSON lines).")
    var file: String

    func run() throws {
      do {
        let summary = try AuditVerifier.verify(path: file)
        print(
          "\(file): ok, \(summary.records) record\(summary.records == 1 ? "" : "s"), head \(summary.head)")
      } catch let error as AuditError {
        FileHandle.standardError.write(
          Data("\(file)\(error.line.map { ":\($0)" } ?? ""): error: \(error.message)\n".utf8))
        throw ExitCode(error.line == nil ? 2 : 1)
      }
    }
  }

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print an audit log's records, one per line.")

    @Argument(help: "The audit log (JSON lines).")
    var file: String

    func run() throws {
      do {
        for line in try AuditVerifier.show(path: file) { print(line) }
      } catch let error as AuditError {
        FileHandle.standardError.write(Data("sixty: error: \(error.message)\n".utf8))
        throw ExitCode(2)
      }
    }
  }
}
