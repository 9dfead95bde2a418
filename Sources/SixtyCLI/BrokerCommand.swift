import ArgumentParser
import Foundation
import Logging
import SixtyBroker
import SixtyCore

struct BrokerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "broker",
    abstract: "The self-hosted Instance Connect service.",
    subcommands: [Serve.self, PublicKey.self, CAPublicKey.self, Revoke.self])

  static func load(_ path: String) throws -> BrokerConfig {
    let (config, diagnostics) = BrokerConfig.load(path: path)
    printDiagnostics(diagnostics)
    guard let config else { throw CLIError("the broker configuration \(path) has errors (above).", code: 2) }
    return config
  }

  struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Serve SendSSHPublicKey (as AWS does) and signed key lists for sixty-agent.",
      discussion: """
        Listens where broker.yml says (default 127.0.0.1:8600). Logs one line per event to standard \
        error; SIGTERM or SIGINT stops accepting connections and finishes requests in flight.
        """)

    @Option(name: .long, help: "The broker configuration (YAML).")
    var config: String

    @Option(name: .long, help: "Override 'listen' (HOST:PORT; port 0 picks a free one).")
    var listen: String?

    @Option(name: .long, help: "Write the bound port to this file once listening (for scripts and tests).")
    var portFile: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func run() async throws {
      var config = try BrokerCommand.load(self.config)
      do {
        if let listen { try config.listen(on: listen) }
      } catch {
        throw CLIError(error.description, code: 2)
      }
      guard let level = Logger.Level(rawValue: logLevel) else {
        throw CLIError(
          "--log-level '\(logLevel)' is not one of trace, debug, info, notice, warning, error.", code: 2)
      }
      var logger = Logger(label: "sixty.broker")
      logger.logLevel = level
      let portFile = self.portFile
      let host = config.host
      let log = logger
      if !BrokerServer.adoptEventLoopsAsExecutor() {
        logger.debug(
          "the event loops could not become the concurrency executor; serving from the shared pool")
      }
      do {
        try await BrokerServer.run(config: config, logger: logger) { port in
          log.info("listening on \(host):\(port)")
          if let portFile {
            try? "\(port)\n".write(toFile: portFile, atomically: true, encoding: .utf8)
          }
        }
      } catch let error as BrokerStartError {
        throw CLIError(error.description, code: 2)
      }
    }
  }

  struct PublicKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "public-key",
      abstract: "Print the broker's signing public key (base64), for agents' broker_public_key.",
      discussion: "Creates the signing key file (0600) named by signing_key_file when it does not exist yet.")

    @Option(name: .long, help: "The broker configuration (YAML).")
    var config: String

    func run() async throws {
      let config = try BrokerCommand.load(self.config)
      guard let path = config.signingKeyFile else {
        throw CLIError(
          "\(self.config) has no signing_key_file; without one the broker makes a new key at each start and agents cannot pin it.",
          code: 2)
      }
      do {
        print(BrokerServer.publicKeyText(try BrokerServer.signingKey(path: path)))
      } catch let error as BrokerStartError {
        throw CLIError(error.description, code: 2)
      }
    }
  }

  /// The certificate authority of `certificates:` in `config`, or a sentence saying why not.
  static func authority(_ path: String) throws -> SixtyBroker.CertificateAuthority {
    let config = try BrokerCommand.load(path)
    guard let settings = config.certificates else {
      throw CLIError(
        "\(path) has no 'certificates' section; add one with a ca_key_file to make the broker a certificate authority.",
        code: 2)
    }
    do {
      return try SixtyBroker.CertificateAuthority.load(settings)
    } catch {
      throw CLIError(error.description, code: 2)
    }
  }

  struct CAPublicKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "ca-public-key",
      abstract: "Print the certificate authority's public keys, the lines of hosts' TrustedUserCAKeys file.",
      discussion: """
        The current key first, then previous_ca_key_files: hosts that trust every line accept \
        certificates of the new key and of the old ones while a rotation rolls out. Creates the CA \
        key file (Ed25519, 0600) named by ca_key_file when it does not exist yet. Each host also \
        needs an AuthorizedPrincipalsFile holding USER@INSTANCE-ID for each user it lets in, and \
        RevokedKeys pointing at the broker's revoked_keys_file (see the README).
        """)

    @Option(name: .long, help: "The broker configuration (YAML).")
    var config: String

    func run() async throws {
      for line in try BrokerCommand.authority(config).trustedLines { print(line) }
    }
  }

  struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "revoke",
      abstract: "Revoke certificates by serial (the audit record's sequence number) in the broker's KRL.",
      discussion: """
        Adds the serials to revoked_keys_file, an OpenSSH key revocation list that sshd reads \
        through RevokedKeys at each login; copy it to the hosts if they do not read it from the \
        broker's disk. A certificate's serial is the sequence number of its audit record, and its \
        key id is the record's request id (sshd logs both).
        """)

    @Option(name: .long, help: "The broker configuration (YAML).")
    var config: String

    @Option(name: .long, parsing: .upToNextOption, help: "A certificate serial to revoke (repeatable).")
    var serial: [UInt64] = []

    func validate() throws {
      guard !serial.isEmpty else { throw ValidationError("Name at least one certificate with --serial N.") }
      if serial.contains(0) {
        throw ValidationError("Serial 0 is not a certificate serial; expected a number above 0.")
      }
    }

    func run() async throws {
      let authority = try BrokerCommand.authority(config)
      do {
        let all = try authority.revoke(serial, now: Date())
        print(
          "revoked \(serial.count) serial\(serial.count == 1 ? "" : "s"); \(authority.revokedKeysFile ?? "") now revokes \(all.count)"
        )
      } catch {
        throw CLIError(error.description, code: 2)
      }
    }
  }
}
