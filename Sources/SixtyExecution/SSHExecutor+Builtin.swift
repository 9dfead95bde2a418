import Foundation
import NIOCore
import NIOSSH
import SixtyCore
import SixtyKeys
import SixtyPlaybook
import SixtyPolicy
import SixtyProcess
import SixtyScheduler

/// The hosts the executor reaches with the built-in client (`BuiltinSSHClient`): their
/// connections and running tasks, and the hosts handed back to OpenSSH.
// Sendable: the settings are constants; the maps are behind `lock`.
final class BuiltinTransport: @unchecked Sendable {
  let key: NIOSSHPrivateKey
  let environment: [(String, String)]
  let writer = KnownHostsWriter()
  let lock = NSLock()
  /// Authenticated connections, by host.
  var connections: [String: BuiltinConnection] = [:]
  /// Hosts whose login is under way; true once the host was told to disconnect meanwhile.
  var connecting: [String: Bool] = [:]
  /// Running tasks' session channels.
  var channels: [SSHExecutor.TaskKey: Channel] = [:]
  /// Tasks Sixty stopped (timeout, interrupt): a session that ends with no exit status is theirs.
  var stopped: Set<SSHExecutor.TaskKey> = []
  /// Hosts this client could not talk to as OpenSSH would: OpenSSH has them for the run.
  var openSSH: Set<String> = []
  /// Remote stops (`pkill` sessions) on their way, in all and by host.
  let stops = DispatchGroup()
  var stopsByHost: [String: Int] = [:]
  /// Hosts told to disconnect while a stop of theirs was on its way: closed when it is done.
  var closeAfterStops: Set<String> = []
  /// Tasks whose completion has not been delivered yet.
  let tasks = DispatchGroup()

  init(key: NIOSSHPrivateKey, environment: [(String, String)]) {
    self.key = key
    self.environment = environment
  }
}

extension SSHExecutor {
  /// Uses the built-in client for the hosts it can reach as OpenSSH would. Nil when it is used;
  /// otherwise why not: another `ssh` program, the operator's `-F`/`-J`/`-o`, an ssh_config that
  /// sets something (`config`, read once per run), or an RSA key. Call before the executor is
  /// shared.
  public func useBuiltinClient(key pair: SSHKeyPair, config: SSHConfigCheck) -> String? {
    if commandLine.ssh != "ssh" { return "the ssh program is \(commandLine.ssh)" }
    if !commandLine.extraOptions.isEmpty { return "ssh options were given (-F, -J or -o)" }
    if let reason = config.needsOpenSSH { return reason }
    guard let key = BuiltinSSHClient.privateKey(pair) else { return "the run's key is RSA" }
    builtin = BuiltinTransport(key: key, environment: config.environment(ProcessInfo.processInfo.environment))
    return nil
  }

  /// Whether the built-in client takes this host: no ssh options of its own (ProxyJump,
  /// ProxyCommand, …), and not handed back to OpenSSH earlier in the run.
  func builtinTakes(_ host: String, _ target: ExecutionTarget) -> BuiltinTransport? {
    guard let builtin, target.sshOptions.isEmpty else { return nil }
    return builtin.lock.withLock { builtin.openSSH.contains(host) } ? nil : builtin
  }

  func builtinConnect(
    _ builtin: BuiltinTransport, host: ScheduledHost, target: ExecutionTarget,
    completion: @escaping @Sendable (ConnectOutcome) -> Void
  ) {
    var certificate: NIOSSHCertifiedPublicKey?
    if let path = commandLine.certificates[host.name] {
      guard let text = try? String(contentsOfFile: path, encoding: .utf8),
        let key = try? NIOSSHPublicKey(
          openSSHPublicKey: text.trimmingCharacters(in: .whitespacesAndNewlines)),
        let certified = NIOSSHCertifiedPublicKey(key)
      else {
        completion(.failed("cannot read the certificate of \(host.name) from \(path)"))
        return
      }
      certificate = certified
    }
    let address = ExecutionTarget.bare(target.address)
    let mode: HostKeyCheck.Mode
    switch commandLine.hostKeyPolicy {
    case .off: mode = .off
    case .acceptNew: mode = .acceptNew(file: commandLine.knownHostsFile)
    case .strict: mode = .strict(files: Self.userKnownHostsFiles())
    }
    let login = BuiltinSSHClient.Login(
      address: address, port: target.port, user: target.user, key: builtin.key, certificate: certificate,
      connectTimeout: Double(commandLine.connectTimeout),
      hostKeys: HostKeyCheck(
        mode: mode, host: host.name, address: address, port: target.port, writer: builtin.writer),
      environment: builtin.environment)
    onCommand?(
      "(built-in ssh client) \(target.user)@\(address) port \(target.port), "
        + (certificate == nil ? "key" : "certificate") + " signed at once")
    builtin.lock.withLock { builtin.connecting[host.name] = false }
    BuiltinSSHClient.connect(login).whenComplete { [self] result in
      let stopped = builtin.lock.withLock { builtin.connecting.removeValue(forKey: host.name) ?? false }
      switch result {
      case .success(let connection):
        if stopped {
          connection.channel.close(promise: nil)
          completion(.failed("the connection to \(host.name) was closed before it was used"))
          return
        }
        builtin.lock.withLock { builtin.connections[host.name] = connection }
        connection.closed.whenComplete { _ in
          builtin.lock.withLock {
            if builtin.connections[host.name] === connection {
              builtin.connections.removeValue(forKey: host.name)
            }
          }
        }
        completion(.authenticated)
      case .failure(BuiltinSSHError.useOpenSSH(let reason)):
        builtin.lock.withLock { _ = builtin.openSSH.insert(host.name) }
        onCommand?("(built-in ssh client) \(host.name): \(reason); OpenSSH takes it")
        if stopped {
          completion(.failed("the connection to \(host.name) was closed before it was used"))
        } else {
          openSSHConnect(host: host, target: target, completion: completion)
        }
      case .failure(BuiltinSSHError.hostKey(let text)):
        completion(.failed(text))
      case .failure(let error):
        let reason = (error as? BuiltinSSHError)?.description ?? "\(error)"
        completion(.failed("cannot connect to \(target.user)@\(target.address):\(target.port): \(reason)"))
      }
    }
  }

  /// The known_hosts files `StrictHostKeyChecking=yes` reads by default.
  static func userKnownHostsFiles() -> [String] {
    let home = SSHConfigCheck.home()
    return [
      home + "/.ssh/known_hosts", home + "/.ssh/known_hosts2", "/etc/ssh/ssh_known_hosts",
      "/etc/ssh/ssh_known_hosts2",
    ]
  }

  /// Runs a task over the host's built-in connection; false when the host has none.
  func builtinRun(
    host: ScheduledHost, task: Int, completion: @escaping @Sendable (TaskOutcome) -> Void
  ) -> Bool {
    guard let builtin, let connection = builtin.lock.withLock({ builtin.connections[host.name] }) else {
      return false
    }
    guard let target = targets[host.name],
      let (command, stdin) = remoteInvocation(host: host, task: task, target: target)
    else {
      completion(.failed("the task has nothing to run"))
      return true
    }
    onCommand?("(built-in ssh client) \(host.name): \(command)")
    let key = TaskKey(host: host.name, task: task)
    let started = Date()
    builtin.tasks.enter()
    connection.exec(
      command, stdin: stdin, cap: outputCap,
      opened: { channel in builtin.lock.withLock { builtin.channels[key] = channel } }
    ).whenComplete { [self] result in
      let stopped = builtin.lock.withLock {
        builtin.channels.removeValue(forKey: key)
        return builtin.stopped.remove(key) != nil
      }
      switch result {
      case .success(let ended):
        // Ended by a signal: 128 + its number, as a shell says; a session Sixty closed on a task
        // it stopped: 143 (SIGTERM); a session that ended under the command: ssh's 255.
        let lost = ended.status == nil && ended.signal == nil && !stopped
        let status = ended.status ?? ended.signal.map(Self.signalStatus) ?? (stopped ? 143 : 255)
        onCapture?(
          TaskCapture(
            host: host.name, task: task, status: status, stdout: ended.stdout, stderr: ended.stderr,
            started: started, ended: Date()))
        completion(
          lost
            ? .connectionLost("the connection to \(host.name) was lost")
            : SSHLog.outcome(status: status, okCodes: target.tasks[task].okCodes))
      case .failure(BuiltinSSHError.lost):
        completion(.connectionLost("the connection to \(host.name) was lost"))
      case .failure(let error):
        completion(.failed("\(host.name): \((error as? BuiltinSSHError)?.description ?? "\(error)")"))
      }
      builtin.tasks.leave()
    }
    return true
  }

  /// 128 + the signal's number, as a shell reports a command a signal ended (255 when unknown).
  static func signalStatus(_ name: String) -> Int32 {
    Signals.numbers[name].map { 128 + Int32($0) } ?? 255
  }

  /// Stops a task's remote process (`pkill` on a session of its own), then closes its session;
  /// false when the task does not run over the built-in client.
  func builtinKill(host: String, task: Int) -> Bool {
    guard let builtin else { return false }
    let key = TaskKey(host: host, task: task)
    let channel: Channel? = builtin.lock.withLock {
      guard let channel = builtin.channels[key] else { return nil }
      builtin.stopped.insert(key)
      return channel
    }
    guard let channel else { return false }
    let marker = stopper.taskMarker(host: index[host] ?? 0, task: task)
    // The stopped process's session then ends by itself, with its exit status; one that does
    // not within 2 s is closed.
    builtinStopRemote(builtin, host: host, pattern: RemoteStopper.pattern(prefix: marker, exact: true)) {
      DispatchQueue.global().asyncAfter(deadline: .now() + 2) { channel.close(promise: nil) }
    }
    return true
  }

  /// Runs `pkill -TERM -f -- PATTERN` over the host's connection; `then` runs once, when it
  /// ended or after 3 s.
  func builtinStopRemote(
    _ builtin: BuiltinTransport, host: String, pattern: String, then: @escaping @Sendable () -> Void
  ) {
    guard let connection = builtin.lock.withLock({ builtin.connections[host] }) else {
      then()
      return
    }
    let once = Once()
    builtin.stops.enter()
    builtin.lock.withLock { builtin.stopsByHost[host, default: 0] += 1 }
    // Once, when the stop answered or after 3 s: `then`, then the host's deferred disconnect.
    let finish: @Sendable () -> Void = {
      guard once.claim() else { return }
      let close: BuiltinConnection? = builtin.lock.withLock {
        let left = builtin.stopsByHost[host, default: 1] - 1
        builtin.stopsByHost[host] = left > 0 ? left : nil
        guard left <= 0, builtin.closeAfterStops.remove(host) != nil else { return nil }
        return builtin.connections.removeValue(forKey: host)
      }
      then()
      close?.channel.close(promise: nil)
    }
    connection.exec("pkill -TERM -f -- " + ShellQuote.quote(pattern), stdin: .none, cap: 4096)
      .whenComplete { _ in
        builtin.stops.leave()
        finish()
      }
    DispatchQueue.global().asyncAfter(deadline: .now() + 3, execute: finish)
  }

  /// Closes a host's built-in connection (or stops its login); false when it has none.
  func builtinDisconnect(host: String) -> Bool {
    guard let builtin else { return false }
    let connection: BuiltinConnection? = builtin.lock.withLock {
      if builtin.connecting[host] != nil {
        builtin.connecting[host] = true
        return nil
      }
      // A stop on its way (a task's timeout) needs the connection: it closes once that is done.
      if builtin.stopsByHost[host, default: 0] > 0, builtin.connections[host] != nil {
        builtin.closeAfterStops.insert(host)
        return nil
      }
      return builtin.connections.removeValue(forKey: host)
    }
    if let connection {
      connection.channel.close(promise: nil)
      return true
    }
    return builtin.lock.withLock { builtin.connecting[host] != nil || builtin.closeAfterStops.contains(host) }
  }

  /// Closes every built-in connection and waits (up to 5 s) for them to close.
  func builtinClose() async {
    guard let builtin else { return }
    _ = await builtin.stops.settled(within: 3)
    let connections = builtin.lock.withLock {
      let all = Array(builtin.connections.values)
      builtin.connections.removeAll()
      builtin.closeAfterStops.removeAll()
      for host in builtin.connecting.keys { builtin.connecting[host] = true }
      return all
    }
    for connection in connections { connection.channel.close(promise: nil) }
    let closed = DispatchGroup()
    for connection in connections {
      closed.enter()
      connection.closed.whenComplete { _ in closed.leave() }
    }
    _ = await closed.settled(within: 5)
    // Every task's output and outcome delivered before the run reports.
    _ = await builtin.tasks.settled(within: 5)
  }

  /// Stops every task running over the built-in client (second interrupt): the remote processes
  /// first, then (after the answer or 4 s) the connections of the hosts that ran them.
  func builtinKillAll() {
    guard let builtin else { return }
    let hosts = builtin.lock.withLock {
      builtin.stopped.formUnion(builtin.channels.keys)
      return Set(builtin.channels.keys.map(\.host))
    }
    for host in hosts {
      let once = Once()
      let closeHost: @Sendable () -> Void = {
        guard once.claim() else { return }
        let connection = builtin.lock.withLock { builtin.connections[host] }
        connection?.channel.close(promise: nil)
      }
      builtinStopRemote(
        builtin, host: host,
        pattern: RemoteStopper.pattern(prefix: stopper.hostPrefix(host: index[host] ?? 0), exact: false),
        then: closeHost)
      DispatchQueue.global().asyncAfter(deadline: .now() + 4, execute: closeHost)
    }
  }
}
