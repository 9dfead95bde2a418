import Foundation

/// A real `sixty broker` and real `sshd` processes on loopback, each sshd with its own config,
/// host key and pid, its AuthorizedKeysCommand the built `sixty-agent` (as root, the fleet's own
/// copy of it: `FleetAgent`). Everything is stopped by pid in `stop()`.
final class LocalFleet: @unchecked Sendable {
  struct Host {
    var instanceID: String
    var name: String
    var address: String
    var port: Int
    var sshd: LocalProcess?
    var token: String
    var directory: String
    var sshLog: String { sshd?.log ?? "" }
  }

  let directory: String
  private(set) var broker: LocalProcess
  let brokerPort: Int
  /// With `replicas` > 1: every replica after the first (same configuration and store), and its port.
  private(set) var otherBrokers: [LocalProcess] = []
  private(set) var otherBrokerPorts: [Int] = []
  /// The port of every replica, the first one's first.
  var brokerPorts: [Int] { [brokerPort] + otherBrokerPorts }
  let brokerPublicKey: String
  var hosts: [Host] = []
  let user: String
  /// The agent sshd runs (as root, copied to `agentHome`).
  let agent: String
  /// As root: the fleet's root-owned directory holding the agent and its configurations.
  private(set) var agentHome: FleetAgent?
  /// The `broker:` value of the hosts' agent.yml, given the broker's URL (a list with it, say).
  let agentBroker: @Sendable (String) -> String
  let agentTimeout: String
  /// With replicas: each agent's `broker:` lists every replica, its own first.
  let agentAsksEveryReplica: Bool
  var endpoint: String { "http://127.0.0.1:\(brokerPort)" }
  var auditPath: String { directory + "/audit.jsonl" }
  /// Whether the broker is the fleet's certificate authority and the hosts trust it.
  let certificates: Bool

  static let accessKeyID = "AKIDSIXTYTESTDEPLOY1"
  static let secret = "test-secret-0123456789abcdefghij"
  static let limitedKeyID = "AKIDSIXTYTESTLIMITED"
  static let limitedSecret = "limited-secret-0123456789abcdef"

  static var hasFaketime: Bool { LocalProcess.which("faketime") != nil }

  static var canRun: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") }

  static var agentPath: String {
    URL(fileURLWithPath: SixtyBinary.path).deletingLastPathComponent().appendingPathComponent("sixty-agent")
      .path
  }

  /// The user sshd logs in (root when the tests run as root, otherwise the current user).
  static var currentUser: String {
    guard let entry = getpwuid(getuid()) else { return "root" }
    return String(cString: entry.pointee.pw_name)
  }

  /// - Parameters:
  ///   - count: how many sshd hosts.
  ///   - ttl: the broker's key TTL.
  ///   - allowedSources: `allowed_sources` of the hosts' group.
  ///   - startSSHD: false to run only the broker (agent tests).
  ///   - agent: the `sixty-agent` to run (default: the one built beside `sixty`).
  ///   - agentBroker: the agent's `broker:` value from the broker's URL (default: that URL).
  /// - Parameter brokerClockOffset: run the broker under `faketime` with its wall clock moved by
  ///   this much (e.g. "+10m"), to test clock skew.
  init(
    count: Int, ttl: String = "60s", allowedSources: [String] = ["127.0.0.0/8"], startSSHD: Bool = true,
    brokerClockOffset: String? = nil, pushRate: Int = 1000, extraBrokerConfig: String = "",
    hostsPerSSHD: Int = 1, agent: String = LocalFleet.agentPath, store: String? = nil,
    storeEnvironment: [String: String] = [:], replicas: Int = 1, agentReplica: Int = 0,
    agentAsksEveryReplica: Bool = false, agentBroker: @escaping @Sendable (String) -> String = { $0 },
    agentTimeout: String = "3s", certificates: Bool = false, preferCertificates: Bool = false
  ) throws {
    self.agent = agent
    self.agentBroker = agentBroker
    self.agentTimeout = agentTimeout
    self.agentAsksEveryReplica = agentAsksEveryReplica
    directory =
      FileManager.default.temporaryDirectory.appendingPathComponent("sixty-fleet-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(
      atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
    user = LocalFleet.currentUser
    var hostEntries = ""
    var planned: [(String, String, String, Int, String)] = []
    // Shared sshds: every host has its own loopback address (127.20.x.y) on one port.
    let sharedPort = LocalProcess.freePort()
    for index in stride(from: 1, through: count, by: 1) {
      let id = String(format: "i-%016x", index)
      let token = "agent-token-\(UUID().uuidString)"
      if hostsPerSSHD > 1 {
        planned.append((id, "web-\(index)", "127.20.\(index / 250).\(index % 250 + 1)", sharedPort, token))
      } else {
        planned.append((id, "web-\(index)", "127.0.0.1", LocalProcess.freePort(), token))
      }
      hostEntries += "  \(id): {name: web-\(index), tags: {role: web}, group: lab, token: \(token)}\n"
    }
    // Every client and agent of a local fleet connects from 127.0.0.1: one source, for which
    // the default limit (32 connections) is meant for one host, not a fleet.
    let perSource =
      extraBrokerConfig.contains("max_connections_per_source")
        || extraBrokerConfig.contains("max_connections:")
      ? "" : "max_connections_per_source: 256"
    // Certificate mode: the broker is the fleet's certificate authority; each sshd trusts it, reads
    // its revocation list and lets in USER@INSTANCE-ID principals (one sshd a host).
    var certificateConfig = ""
    if certificates {
      let made = try runProgram(
        "/usr/bin/ssh-keygen",
        ["-q", "-t", "ed25519", "-N", "", "-C", "fleet-ca", "-f", directory + "/ca.key"])
      guard made.status == 0 else { throw MotoServer.Failure("ssh-keygen (CA) failed: \(made.stderr)") }
      certificateConfig = """
        certificates:
          ca_key_file: \(directory)/ca.key
          revoked_keys_file: \(directory)/revoked.krl
          prefer: \(preferCertificates)
        """
    }
    self.certificates = certificates
    let config = """
      listen: 127.0.0.1:0
      key_ttl: \(ttl)
      \(certificateConfig)
      signing_key_file: \(directory)/signing.key
      \(store.map { "store: \"\($0)\"" } ?? "audit_log: \(directory)/audit.jsonl")
      \(perSource)
      \(extraBrokerConfig)
      principals:
        deploy:
          access_key_id: \(LocalFleet.accessKeyID)
          secret: \(LocalFleet.secret)
          hosts: [role=web]
          users: ["*"]
          rate: {per_second: \(pushRate), burst: \(pushRate)}
        limited:
          access_key_id: \(LocalFleet.limitedKeyID)
          secret: \(LocalFleet.limitedSecret)
          hosts: [web-1]
          users: [nobody-else]
      groups:
        lab: {allowed_sources: [\(allowedSources.joined(separator: ", "))]}
      hosts:
      \(hostEntries)
      """
    try config.write(toFile: directory + "/broker.yml", atomically: true, encoding: .utf8)
    // It holds the principals' secrets and the agent tokens inline: the broker wants it 0600.
    chmod(directory + "/broker.yml", 0o600)
    let publicKey = try runProgram(
      SixtyBinary.path, ["broker", "public-key", "--config", directory + "/broker.yml"])
    guard publicKey.status == 0 else {
      throw MotoServer.Failure("broker public-key failed: \(publicKey.stderr)")
    }
    let brokerKey = publicKey.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    brokerPublicKey = brokerKey
    let serve = [
      "broker", "serve", "--config", directory + "/broker.yml", "--port-file", directory + "/broker.port",
    ]
    if let offset = brokerClockOffset, let faketime = LocalProcess.which("faketime") {
      // faketime runs the broker as its child; stop() stops that child by its pid as well.
      broker = try LocalProcess(
        faketime, ["-f", offset, SixtyBinary.path] + serve,
        environment: ["FAKETIME_DONT_FAKE_MONOTONIC": "1"],
        logPath: directory + "/broker.log", stopsChildren: true)
    } else {
      broker = try LocalProcess(
        SixtyBinary.path, serve, environment: storeEnvironment, logPath: directory + "/broker.log")
    }
    func waitForPortFile(_ path: String, _ process: LocalProcess) -> Int? {
      for _ in 0..<400 where process.isRunning {
        if let text = try? String(contentsOfFile: path, encoding: .utf8),
          let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
        {
          return value
        }
        usleep(50_000)
      }
      return nil
    }
    guard let firstPort = waitForPortFile(directory + "/broker.port", broker) else {
      broker.stop()
      throw MotoServer.Failure("the broker did not start: \(broker.log)")
    }
    brokerPort = firstPort
    for replica in stride(from: 1, to: replicas, by: 1) {
      let portFile = directory + "/broker-\(replica).port"
      let process = try LocalProcess(
        SixtyBinary.path,
        ["broker", "serve", "--config", directory + "/broker.yml", "--port-file", portFile],
        environment: storeEnvironment, logPath: directory + "/broker-\(replica).log")
      otherBrokers.append(process)
      guard let port = waitForPortFile(portFile, process) else {
        for other in otherBrokers { other.stop() }
        broker.stop()
        throw MotoServer.Failure("broker replica \(replica) did not start: \(process.log)")
      }
      otherBrokerPorts.append(port)
    }
    let port = ([firstPort] + otherBrokerPorts)[agentReplica]
    let agentUser = getuid() == 0 ? "nobody" : user
    do {
      if getuid() == 0 { agentHome = try FleetAgent.install(from: agent, user: agentUser) }
      if hostsPerSSHD > 1 {
        try startSharedSSHDs(planned, per: hostsPerSSHD, brokerPort: port, agentUser: agentUser)
        return
      }
      for (id, name, address, sshPort, token) in planned {
        let dir = directory + "/" + name
        try FileManager.default.createDirectory(
          atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let keygen = try runProgram(
          "/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", dir + "/host_key"])
        guard keygen.status == 0 else { throw MotoServer.Failure("ssh-keygen failed: \(keygen.stderr)") }
        let command = try writeAgent(
          directory: dir, name: name, instanceID: id, token: token, brokerPort: port, timeout: agentTimeout)
        // A port found free can be taken by another test before sshd binds it: then sshd exits
        // saying so, and the host gets another port.
        var sshPort = sshPort
        var sshd: LocalProcess?
        for attempt in 1...5 {
          let sshdConfig = """
            Port \(sshPort)
            ListenAddress \(address)
            HostKey \(dir)/host_key
            PidFile \(dir)/sshd.pid
            AuthorizedKeysFile none
            AuthorizedKeysCommand \(command)
            AuthorizedKeysCommandUser \(agentUser)
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin prohibit-password
            UsePAM no
            StrictModes no
            MaxStartups 200:30:400
            MaxSessions 64
            LogLevel VERBOSE
            """ + (certificates ? "\n" + (try certificateSSHDConfig(host: dir, instanceID: id)) : "")
          try sshdConfig.write(toFile: dir + "/sshd_config", atomically: true, encoding: .utf8)
          guard startSSHD else { break }
          let started = try LocalProcess(
            "/usr/sbin/sshd", ["-D", "-e", "-f", dir + "/sshd_config"], logPath: dir + "/sshd.log")
          sshd = started
          // sshd says "Server listening on" once bound; a listener on the port could be another's.
          let deadline = Date().addingTimeInterval(10)
          while started.isRunning && !started.log.contains("Server listening on") && Date() < deadline {
            usleep(10_000)
          }
          if started.isRunning && started.log.contains("Server listening on") { break }
          guard attempt < 5, started.log.contains("Address already in use") else {
            throw MotoServer.Failure("sshd for \(name) did not start: \(started.log)")
          }
          started.stop()
          sshPort = LocalProcess.freePort()
        }
        hosts.append(
          Host(
            instanceID: id, name: name, address: address, port: sshPort, sshd: sshd, token: token,
            directory: dir))
      }
      try Self.requireRunning(hosts)
    } catch {
      stop()
      throw error
    }
  }

  /// sshd settings of a host that trusts the fleet's CA: its principals files (`root` and this
  /// user may log in, each as USER@INSTANCE-ID), the CA's public key and the broker's KRL.
  func certificateSSHDConfig(host dir: String, instanceID: String) throws -> String {
    let principals = dir + "/principals"
    try FileManager.default.createDirectory(
      atPath: principals, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    for name in Set(["root", user]) {
      try "\(name)@\(instanceID)\n".write(toFile: principals + "/" + name, atomically: true, encoding: .utf8)
    }
    return """
      TrustedUserCAKeys \(directory)/ca.key.pub
      RevokedKeys \(directory)/revoked.krl
      AuthorizedPrincipalsFile \(principals)/%u
      """
  }

  /// One agent configuration per host (its instance id and token), and the AuthorizedKeysCommand
  /// that runs the agent with it. As root that is the fleet's copy of the agent, with the
  /// configuration beside it (owned by `nobody`, who runs it); otherwise sshd runs as this user and
  /// checks only the command's first word (`/bin/sh`), so a script in `dir` runs the agent.
  func writeAgent(
    directory dir: String, name: String, instanceID: String, token: String, brokerPort: Int,
    timeout: String
  ) throws -> String {
    let agentConfig = """
      broker: \(agentAsksEveryReplica
        ? "[" + ([brokerPort] + brokerPorts.filter { $0 != brokerPort }).map { "http://127.0.0.1:\($0)" }.joined(separator: ", ") + "]"
        : agentBroker("http://127.0.0.1:\(brokerPort)"))
      instance_id: \(instanceID)
      token: \(token)
      broker_public_key: \(brokerPublicKey)
      timeout: \(timeout)
      syslog: false
      """
    try FileManager.default.createDirectory(
      atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    if let agentHome {
      let config = try agentHome.writeConfiguration(agentConfig, name: name, user: "nobody")
      return "\(agentHome.path) --config \(config) %u %f"
    }
    try agentConfig.write(toFile: dir + "/agent.yml", atomically: true, encoding: .utf8)
    // The token is inline, so the file is 0600.
    chmod(dir + "/agent.yml", 0o600)
    try "exec \(agent) --config \(dir)/agent.yml \"$@\"\n".write(
      toFile: dir + "/agent.sh", atomically: true, encoding: .utf8)
    chmod(dir + "/agent.sh", 0o755)
    return "/bin/sh \(dir)/agent.sh %u %f"
  }

  /// Hosts on their own loopback addresses, `per` of them to one sshd (an sshd listens on at
  /// most 16 addresses). `Match LocalAddress` gives each address its host's agent, so each host
  /// still has its own instance id and token.
  private func startSharedSSHDs(
    _ planned: [(String, String, String, Int, String)], per: Int, brokerPort: Int, agentUser: String
  ) throws {
    let groups = stride(from: 0, to: planned.count, by: min(per, 16)).map {
      Array(planned[$0..<min($0 + min(per, 16), planned.count)])
    }
    for (number, group) in groups.enumerated() {
      let dir = directory + "/sshd-\(number)"
      try FileManager.default.createDirectory(
        atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
      let keygen = try runProgram(
        "/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", dir + "/host_key"])
      guard keygen.status == 0 else { throw MotoServer.Failure("ssh-keygen failed: \(keygen.stderr)") }
      var config = """
        Port \(group[0].3)
        HostKey \(dir)/host_key
        PidFile \(dir)/sshd.pid
        AuthorizedKeysFile none
        AuthorizedKeysCommand /bin/false
        AuthorizedKeysCommandUser \(agentUser)
        PubkeyAuthentication yes
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        PermitRootLogin prohibit-password
        UsePAM no
        StrictModes no
        MaxStartups 200:30:400
        MaxSessions 64
        LogLevel INFO

        """
      for (_, _, address, _, _) in group { config += "ListenAddress \(address)\n" }
      for (id, name, address, _, token) in group {
        let command = try writeAgent(
          directory: directory + "/" + name, name: name, instanceID: id, token: token, brokerPort: brokerPort,
          timeout: agentTimeout)
        config += "Match LocalAddress \(address)\n  AuthorizedKeysCommand \(command)\n"
      }
      // ListenAddress lines must come before the first Match block.
      let lines = config.split(separator: "\n", omittingEmptySubsequences: false)
      let listen = lines.filter { $0.hasPrefix("ListenAddress") }
      let rest = lines.filter { !$0.hasPrefix("ListenAddress") }
      let firstMatch = rest.firstIndex { $0.hasPrefix("Match") } ?? rest.count
      let ordered = rest[..<firstMatch] + listen + rest[firstMatch...]
      try ordered.joined(separator: "\n").write(
        toFile: dir + "/sshd_config", atomically: true, encoding: .utf8)
      let sshd = try LocalProcess(
        "/usr/sbin/sshd", ["-D", "-e", "-f", dir + "/sshd_config"], logPath: dir + "/sshd.log")
      for (id, name, address, sshPort, token) in group {
        hosts.append(
          Host(
            instanceID: id, name: name, address: address, port: sshPort, sshd: sshd, token: token,
            directory: directory + "/" + name))
      }
    }
    for host in hosts where !LocalProcess.waitForPort(host.port, address: host.address) {
      throw MotoServer.Failure("sshd for \(host.name) did not start: \(host.sshd?.log ?? "")")
    }
    try Self.requireRunning(hosts)
  }

  /// Something answering on a host's port is not enough: an sshd that could not bind exits, and
  /// another process's listener would then take this host's logins.
  static func requireRunning(_ hosts: [Host]) throws {
    for host in hosts where host.sshd?.isRunning == false {
      throw MotoServer.Failure(
        "sshd for \(host.name) exited (port \(host.port) taken by another process?): \(host.sshd?.log ?? "")")
    }
  }

  /// An inventory listing the fleet's hosts.
  func writeInventory() throws -> String {
    var text = "hosts:\n"
    for host in hosts {
      text +=
        "  \(host.name):\n    address: \(host.address)\n    port: \(host.port)\n    user: \(user)\n    instance_id: \(host.instanceID)\n    tags: {role: web}\n"
    }
    let path = directory + "/inventory.yml"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  /// Environment for `aws`/`sixty` to sign as `deploy`.
  var environment: [String: String] {
    [
      "AWS_ACCESS_KEY_ID": LocalFleet.accessKeyID, "AWS_SECRET_ACCESS_KEY": LocalFleet.secret,
      "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": "",
      "SIXTY_HISTORY": historyPath,
    ]
  }

  /// Each fleet records its runs in its own history.
  var historyPath: String { directory + "/history.sqlite" }

  /// `ssh` options for a test login: no known-hosts, no agent, no config file, fail fast.
  func sshArguments(_ host: Host, key: String, extra: [String] = []) -> [String] {
    [
      "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o",
      "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o",
      "ConnectTimeout=10", "-o", "LogLevel=ERROR", "-p", String(host.port),
    ] + extra + ["\(user)@\(host.address)"]
  }

  /// Stops the sshds and the broker, then removes the fleet's copy of the agent.
  func stop() {
    for host in hosts { host.sshd?.stop() }
    broker.stop()
    for other in otherBrokers { other.stop() }
    agentHome?.remove()
    agentHome = nil
  }

  /// Stops the broker (SIGTERM: it finishes what is in flight) and starts it again with the same
  /// configuration on the same port; its log goes to `broker-restarted.log`.
  func restartBroker() throws {
    broker.stop()
    broker = try LocalProcess(
      SixtyBinary.path,
      [
        "broker", "serve", "--config", directory + "/broker.yml", "--listen", "127.0.0.1:\(brokerPort)",
      ], logPath: directory + "/broker-restarted.log")
    guard LocalProcess.waitForPort(brokerPort) else {
      throw MotoServer.Failure("the restarted broker did not start: \(broker.log)")
    }
  }

  func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// A fleet for the length of `body`: started by `make`, then stopped and its directory removed
/// whatever `body` does (returns, throws or records a failed expectation).
func withLocalFleet<T>(_ make: @autoclosure () throws -> LocalFleet, _ body: (LocalFleet) throws -> T) throws
  -> T
{
  let fleet = try make()
  defer {
    fleet.stop()
    fleet.remove()
  }
  return try body(fleet)
}

/// `withLocalFleet` for tests that wait on processes or the network.
func withLocalFleet<T>(_ make: @autoclosure () throws -> LocalFleet, _ body: (LocalFleet) async throws -> T)
  async throws -> T
{
  let fleet = try make()
  defer {
    fleet.stop()
    fleet.remove()
  }
  return try await body(fleet)
}
