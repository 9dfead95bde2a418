import ArgumentParser
import Foundation
import InstanceConnect
import SixtyCore
import SixtyExecution
import SixtyHistory
import SixtyKeys
import SixtyPlaybook
import SixtyPolicy
import SixtyProcess
import SixtyRun

struct SshCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ssh",
    abstract: "Open one SSH session to a host with a fresh key pushed through Instance Connect (like mssh).",
    discussion: """
      TARGET is [USER@]NAME, where NAME is a host of the inventory or an instance id (i-…). An instance id \
      that the inventory does not list needs --address. Sixty generates a key pair in a private 0700 \
      directory, pushes its public key for the OS user, runs the system ssh with that key \
      (IdentitiesOnly=yes, so your agent's keys are not offered), and wipes the key when ssh exits. Your \
      ssh_config still applies (ssh is given the inventory's host name, with the address as HostName, \
      so Host blocks match, and no -l or -p the inventory does not set); add options with -o, -J, -F \
      or --ssh-arg. The OS user is USER@, else --os-user, else the inventory's, else the one ssh -G \
      reports (ssh_config's User, else yours), as for sixty run.
      """)

  @Argument(help: "The host: [USER@]NAME, NAME being an inventory host or an instance id.")
  var target: String

  @Argument(parsing: .postTerminator, help: "The remote command (after --); none opens a shell.")
  var command: [String] = []

  @Option(name: [.customShort("i"), .long], help: "The inventory file (YAML); default: SIXTY_INVENTORY.")
  var inventory: String?

  @Option(
    name: .long,
    help: "The OS user (default: the inventory's user, else the User ssh_config gives the host, else yours).")
  var osUser: String?

  @Option(name: .long, help: "The address to connect to when TARGET is an instance id the inventory lacks.")
  var address: String?

  @Option(name: .long, help: "The SSH port (default: the inventory's, then 22).")
  var port: Int?

  @Option(name: .long, help: "The instance's availability zone (default: the inventory's).")
  var zone: String?

  @Option(name: .long, help: "The key type: ed25519 (default), rsa, rsa4096.")
  var keyType: String = "ed25519"

  @Option(name: .customShort("o"), help: "An ssh option (Key=Value), passed through; repeatable.")
  var sshOptions: [String] = []

  @Option(name: .customShort("J"), help: "Jump host(s), passed to ssh -J.")
  var jump: String?

  @Option(name: .customShort("F"), help: "An ssh configuration file, passed to ssh -F.")
  var sshConfig: String?

  @Option(
    name: .customLong("ssh-arg"), parsing: .unconditionalSingleValue,
    help: "Any other ssh argument, passed through in order; repeatable.")
  var sshArgs: [String] = []

  @Option(name: .long, help: "The ssh program (default: ssh from PATH).")
  var ssh: String = "ssh"

  @Option(
    name: .long,
    help:
      "The organisation policy file (default: SIXTY_POLICY); its host_key_checking applies, as for sixty run."
  )
  var policy: String?

  @OptionGroup var connect: ConnectOptions

  func validate() throws {
    guard KeyType(parsing: keyType) != nil else {
      throw ValidationError("The key type '\(keyType)' is not supported; expected ed25519, rsa or rsa4096.")
    }
    if let port, !(1...65535).contains(port) {
      throw ValidationError("The port \(port) is out of range; expected 1 to 65535.")
    }
    if let problem = client.problem(interactive: true) { throw ValidationError(problem) }
  }

  /// The operator's `-F`, `-J` and `-o`, as `sixty run` takes them.
  var client: SSHClientSettings {
    SSHClientSettings(options: sshOptions, jump: jump, configFile: sshConfig)
  }

  /// Where and as whom to connect, resolved from TARGET, the inventory and the flags: the same
  /// `ExecutionTarget` a run builds for the host.
  struct Destination {
    var instanceID: String
    var target: ExecutionTarget
    var zone: String?
  }

  func resolve() throws -> Destination {
    var name = target
    var userFromTarget: String?
    if let at = target.lastIndex(of: "@") {
      userFromTarget = String(target[..<at])
      name = String(target[target.index(after: at)...])
    }
    var host: InventoryHost?
    let inventoryPath = inventory ?? ProcessInfo.processInfo.environment["SIXTY_INVENTORY"]
    if let inventoryPath {
      let (loaded, diagnostics) = InventoryParser.load(path: inventoryPath)
      guard let loaded, !diagnostics.contains(where: { $0.severity == .error }) else {
        printDiagnostics(diagnostics)
        throw CLIError("the inventory \(inventoryPath) has errors (above).", code: 2)
      }
      host = loaded.host(named: name) ?? loaded.hosts.first { $0.instanceID == name }
      if host == nil && !InstanceConnectValidation.isInstanceID(name) {
        let hint = Suggestion.hint(for: name, in: loaded.hosts.map(\.name))
        throw CLIError("the inventory \(inventoryPath) has no host or instance id '\(name)'\(hint).", code: 2)
      }
    }
    let instanceID: String
    if let host {
      guard let id = host.instanceID else {
        let place = host.location.map { "\($0): " } ?? ""
        throw CLIError(
          "\(place)the host '\(host.name)' has no instance_id; Instance Connect needs one (e.g. instance_id: i-0123456789abcdef0).",
          code: 2)
      }
      instanceID = id
    } else if InstanceConnectValidation.isInstanceID(name) {
      instanceID = name
    } else {
      throw CLIError(
        "'\(name)' is not an instance id (i- followed by hex digits), and no inventory was given (-i or SIXTY_INVENTORY) to look it up.",
        code: 2)
    }
    guard let address = address ?? host?.address else {
      throw CLIError(
        "the instance \(instanceID) has no known address; pass --address or list it in an inventory with -i.",
        code: 2)
    }
    let user = userFromTarget ?? osUser ?? host?.user
    if let user, !InstanceConnectValidation.isOSUser(user) {
      throw CLIError(
        "the OS user '\(user)' is not valid; expected 1 to 32 letters, digits and . _ - @, starting with a letter or '_'.",
        code: 2)
    }
    try Self.checkAddress(address)
    var target = ExecutionTarget(
      address: address, port: port ?? host?.port ?? 22, user: user ?? SSHConfigResolver.localUser, tasks: [],
      sshOptions: host?.sshOptions ?? [], name: host?.name, userIsSet: user != nil,
      portIsSet: port != nil || host?.portIsSet == true)
    if host == nil { target.name = nil }
    return Destination(instanceID: instanceID, target: target, zone: zone ?? host?.zone)
  }

  /// The user ssh logs in as when TARGET, --os-user and the inventory name none: `ssh -G`'s, with
  /// the same options, as `sixty run` finds it.
  func resolveUser(_ destination: inout Destination) async {
    guard !destination.target.userIsSet else { return }
    let resolver = SSHConfigResolver(ssh: ssh, client: client)
    if let user = await resolver.user(for: destination.target) { destination.target.user = user }
  }

  /// An address must be a host name or IP literal; anything ssh could read as an option or a
  /// second argument is refused before ssh ever sees it.
  static func checkAddress(_ address: String) throws {
    guard SafeText.isHostAddress(address) else {
      throw CLIError(
        "the address \(SafeText.quoted(address)) is not a host name or IP address; ssh will not be run with it.",
        code: 2)
    }
  }

  /// The ssh command line (see `InteractiveSSH`), with the host key checking `sixty run` would use
  /// (the organisation policy's `host_key_checking`, by default `accept-new` in the same
  /// known_hosts file).
  static func sshArguments(
    destination: Destination, keyPath: String, client: SSHClientSettings, extra: [String], command: [String],
    hostKeyPolicy: HostKeyPolicy = .acceptNew, knownHostsFile: String = History.defaultKnownHostsFile()
  ) -> [String] {
    InteractiveSSH.arguments(
      target: destination.target, keyPath: keyPath, client: client, hostKeyPolicy: hostKeyPolicy,
      knownHostsFile: knownHostsFile, extra: extra, command: command)
  }

  /// The organisation policy's host key checking (`--policy`, else SIXTY_POLICY), else the default.
  /// - Throws: `CLIError` (exit 2) when the policy file has errors.
  func hostKeyPolicy() throws -> HostKeyPolicy {
    guard let path = policy ?? ProcessInfo.processInfo.environment["SIXTY_POLICY"] else {
      return Policy.defaults.hostKeyPolicy
    }
    let (loaded, diagnostics) = PolicyParser.load(path: path)
    guard let loaded, !diagnostics.contains(where: { $0.severity == .error }) else {
      printDiagnostics(diagnostics)
      throw CLIError("the policy \(path) has errors (above).", code: 2)
    }
    return loaded.hostKeyPolicy ?? Policy.defaults.hostKeyPolicy
  }

  func run() async throws {
    try connect.settings.checkProfile()
    var destination = try resolve()
    let hostKeys = try hostKeyPolicy()
    await resolveUser(&destination)
    await KeyWipeOnSignal.install()
    let pair = try SSHKeyPair.generate(KeyType(parsing: keyType)!, comment: "sixty-ssh")
    let directory = try EphemeralKeyDirectory(
      key: pair, parent: ProcessInfo.processInfo.environment["SIXTY_KEY_DIR"])
    defer { directory.wipe() }
    do {
      let client = try await connect.settings.client()
      let response = try await client.sendSSHPublicKey(
        SendSSHPublicKeyRequest(
          instanceID: destination.instanceID, osUser: destination.target.user, publicKey: pair.authorizedKey,
          availabilityZone: destination.zone))
      if let failover = response.failover {
        FileHandle.standardError.write(Data((ServiceError.plain(failover.text, limit: 4000) + "\n").utf8))
      }
      FileHandle.standardError.write(
        Data(
          "sixty: pushed a key for \(destination.target.user) to \(destination.instanceID) (request \(response.requestID)); it is accepted for 60 seconds.\n"
            .utf8))
    } catch let error as InstanceConnectError {
      throw CLIError(error.description, code: error.exitStatus.rawValue)
    }
    let knownHosts = History.defaultKnownHostsFile()
    if hostKeys == .acceptNew { try? SSHExecutor.prepareKnownHostsFile(knownHosts) }
    let arguments = Self.sshArguments(
      destination: destination, keyPath: directory.privateKeyPath, client: client, extra: sshArgs,
      command: command, hostKeyPolicy: hostKeys, knownHostsFile: knownHosts)
    let status = try await Self.runForeground(program: ssh, arguments: arguments)
    directory.wipe()
    throw ExitCode(status)
  }

  /// Runs `program` with this process's terminal and waits, without blocking a thread of the
  /// cooperative pool; returns its exit status (128+signal when killed).
  static func runForeground(program: String, arguments: [String]) async throws -> Int32 {
    // Our SIGINT/SIGTERM are ignored in favour of dispatch sources; ssh must get the defaults back
    // (it leaves an ignored SIGINT ignored). It stays in the terminal's process group.
    let options = SpawnOptions(
      stdin: .inherit, output: .inherit, group: .inherit, defaultSignals: [SIGINT, SIGTERM, SIGQUIT])
    var attempts = 0
    while true {
      do {
        return try await ChildProcess.run([program] + arguments, options).status
      } catch let error as ProcessError where error.step == .spawn(program) {
        // A program that was just written may still be open for writing elsewhere for a moment.
        if error.code == ETXTBSY && attempts < 20 {
          attempts += 1
          try await Task.sleep(for: .milliseconds(50))
          continue
        }
        throw CLIError(
          "cannot run '\(program)': \(String(cString: strerror(error.code))). Is the OpenSSH client installed?",
          code: 1)
      }
    }
  }
}
