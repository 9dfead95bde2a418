import ArgumentParser
import Crypto
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
    var file: String

    @Option(
      name: .long,
      help:
        "The broker's Ed25519 public key (base64 of 32 bytes) or a file holding it; requires a signed head.")
    var publicKey: String?

    @Option(
      name: .long,
      help: "The broker configuration: its signing_key_file gives the public key; requires a signed head.")
    var brokerConfig: String?

    func key() throws -> Curve25519.Signing.PublicKey? {
      if publicKey != nil && brokerConfig != nil {
        throw CLIError("give --public-key or --broker-config, not both.", code: 2)
      }
      if let publicKey {
        var text = publicKey
        if FileManager.default.fileExists(atPath: publicKey) {
          guard let contents = try? String(contentsOfFile: publicKey, encoding: .utf8) else {
            throw CLIError("cannot read the public key file \(publicKey).", code: 2)
          }
          text = contents
        }
        guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
          let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else {
          throw CLIError(
            "--public-key '\(publicKey)' is neither a base64 Ed25519 public key (32 bytes, as `sixty broker public-key` prints) nor a file holding one.",
            code: 2)
        }
        return key
      }
      if let brokerConfig {
        let config = try BrokerCommand.load(brokerConfig)
        guard let path = config.signingKeyFile else {
          throw CLIError(
            "\(brokerConfig) has no signing_key_file, so its broker signs with a new key at each start; pass --public-key instead.",
            code: 2)
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
          let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
          let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else {
          throw CLIError(
            "cannot read the signing key file \(path) named by \(brokerConfig) (expected a base64 Ed25519 private key).",
            code: 2)
        }
        return key.publicKey
      }
      return nil
    }

    func run() throws {
      let key = try key()
      do {
        let summary = try AuditVerifier.verify(path: file, publicKey: key)
        print("\(file): \(Verify.describe(summary, file: file))")
      } catch let error as AuditError {
        FileHandle.standardError.write(
          Data("\(file)\(error.line.map { ":\($0)" } ?? ""): error: \(error.message)\n".utf8))
        throw ExitCode(error.chainBroken ? 1 : 2)
      }
    }

    /// What was verified, and what was not.
    static func describe(_ summary: AuditVerifier.Summary, file: String) -> String {
      let count = "\(summary.records) record\(summary.records == 1 ? "" : "s")"
      var text = "ok, \(count), chain intact, head \(summary.head)"
      guard let checkpoint = summary.checkpoint else {
        return text
          + "; head NOT signed: there is no checkpoint \(AuditLog.checkpointPath(for: file)), so records removed from the end or a rewrite with recomputed hashes would go unnoticed."
      }
      let time = AuditVerifier.escaped(checkpoint.time)
      if summary.signatureChecked {
        text += "; head signed at record \(checkpoint.sequence) at \(time) (signature verified)"
      } else {
        text +=
          "; checkpoint at record \(checkpoint.sequence) (\(time)) matches, but its signature was NOT checked (pass --public-key or --broker-config), so a rewrite with a forged checkpoint would go unnoticed"
      }
      let after = summary.records - checkpoint.sequence
      if after > 0 {
        text +=
          "; the last \(after) record\(after == 1 ? " is" : "s are") after it and not covered by a signature."
      } else {
        text += "."
      }
      return text
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
