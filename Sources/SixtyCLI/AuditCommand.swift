import ArgumentParser
import Crypto
import Foundation
import SixtyAudit
import SixtyBroker

struct AuditCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "audit",
    abstract: "Check or read a hash-chained audit log.",
    subcommands: [Verify.self, Show.self, Export.self])

  struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Verify the chain of an audit log; names the first edited, reordered or missing record.",
      discussion: """
        The chain alone shows edits, insertions, removals and reordering inside the log. Records \
        removed from its end, or a rewrite with recomputed hashes, show only against the broker's \
        signed checkpoint (FILE.checkpoint): pass the broker's public key (--public-key, as \
        `sixty broker public-key` prints it) or its configuration (--broker-config) to check that \
        signature; without one, the checkpoint is compared with the log but could be forged.
        Exit status: 0 when intact, 1 when the chain is broken or contradicts its checkpoint, 2 when \
        a file cannot be read.
        """)

    @Argument(help: "The audit log (JSON lines).")
    var file: String?

    @Option(
      name: .long,
      help:
        "The brokers' shared database (postgresql://…, as broker.yml's 'store'): verify the chain kept there."
    )
    var store: String?

    @Option(
      name: .long,
      help:
        "The broker's Ed25519 public key (base64 of 32 bytes) or a file holding it; requires a signed head.")
    var publicKey: String?

    @Option(
      name: .long,
      help: "The broker configuration: its signing_key_file gives the public key; requires a signed head.")
    var brokerConfig: String?

    func run() async throws {
      if let store {
        guard file == nil, publicKey == nil, brokerConfig == nil else {
          throw CLIError(
            "give a file or --store, not both (a database's chain has no checkpoint file).", code: 2)
        }
        try await AuditStoreCommands.verify(store)
        return
      }
      guard let file else {
        throw CLIError("give the audit log to verify, or --store postgresql://….", code: 2)
      }
      if publicKey != nil && brokerConfig != nil {
        throw CLIError("give --public-key or --broker-config, not both.", code: 2)
      }
      var key: Curve25519.Signing.PublicKey?
      do {
        if let publicKey { key = try AuditVerifier.publicKey(argument: publicKey) }
        if let brokerConfig {
          key = try BrokerServer.auditPublicKey(
            config: try BrokerCommand.load(brokerConfig), path: brokerConfig)
        }
      } catch let error as AuditError {
        throw CLIError(error.message, code: 2)
      } catch let error as BrokerStartError {
        throw CLIError(error.description, code: 2)
      }
      do {
        let summary = try AuditVerifier.verify(path: file, publicKey: key)
        print("\(file): \(summary.text(file: file))")
      } catch let error as AuditError {
        FileHandle.standardError.write(
          Data("\(file)\(error.line.map { ":\($0)" } ?? ""): error: \(error.message)\n".utf8))
        throw ExitCode(error.chainBroken ? 1 : 2)
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

  struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Write the audit chain kept in the brokers' database as JSON lines (an audit log file).",
      discussion: "The output verifies with `sixty audit verify FILE` like a broker's own log.")

    @Option(name: .long, help: "The brokers' shared database (postgresql://…).")
    var store: String

    @Option(name: [.short, .long], help: "Write to this file (created 0600) instead of standard output.")
    var output: String?

    func run() async throws {
      try await AuditStoreCommands.export(store, to: output)
    }
  }
}
