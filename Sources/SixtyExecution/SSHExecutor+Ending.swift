import Foundation
import SixtyProcess
import SixtyScheduler

/// How masters and tasks end: a master's exit, stopping hosts, tasks and the whole run.
extension SSHExecutor {
  /// A master process has exited: it is no longer live, nor its host's current connection. A
  /// fused master's exit reports its connection (when its socket was not seen: "Authenticated
  /// to" in its log tells, for a task that ended first), then its task's outcome.
  func masterExited(
    _ host: ScheduledHost, target: ExecutionTarget, attempt: ConnectAttempt, fusedTask: FusedTask?,
    output: ChildProcess.Output
  ) {
    let ended = Date()
    lock.withLock {
      if let child = attempt.child {
        live.removeValue(forKey: child.pid)
        let key = TaskKey(host: host.name, task: 0)
        if fusedTask != nil, running[key] === child { running.removeValue(forKey: key) }
      }
      if connections[host.name]?.attempt === attempt {
        connections[host.name]?.state.exited()
        connections.removeValue(forKey: host.name)
        sockets.unwatch(host: host.name)
      }
    }
    guard let fusedTask else {
      if attempt.finish() { attempt.completion(.failed(failure(host.name, target, status: output.status))) }
      return
    }
    if attempt.finish() {
      // Ended before its socket was seen: did it authenticate?
      let log =
        output.status == 255 ? (try? String(contentsOfFile: logPath(host.name), encoding: .utf8)) : nil
      guard SSHLog.authenticated(status: output.status, log: log ?? "") else {
        forgetFused(host.name, fusedTask)
        attempt.completion(.failed(failure(host.name, target, status: output.status)))
        return
      }
      fusedTask.markStarted()
      attempt.completion(.authenticated)
    }
    let capture = TaskCapture(
      host: host.name, task: 0, status: output.status, stdout: output.stdout, stderr: output.stderr,
      started: fusedTask.started, ended: ended)
    let outcome: TaskOutcome =
      output.status == 255 && SSHLog.connectionClosed(stderr: output.stderr.text)
      ? .connectionLost("the connection to \(host.name) was lost")
      : SSHLog.outcome(status: output.status, okCodes: target.tasks[0].okCodes)
    // Delivered now if the scheduler already asked for the task. If not (a quick task under
    // load ends before the scheduler has acted on its authentication), the host stays in
    // `fused` until `run` collects the outcome: a `run` that found no fused task would start
    // the task again, over a fresh login, since the master and its socket are gone.
    if let completion = fusedTask.finish(outcome, capture) {
      forgetFused(host.name, fusedTask)
      onCapture?(capture)
      completion(outcome)
    }
  }

  /// The host's fused task is done with: delivered, or its master failed to authenticate.
  func forgetFused(_ host: String, _ task: FusedTask) {
    lock.withLock { if fused[host] === task { fused.removeValue(forKey: host) } }
  }

  /// Why a master exited before authenticating (see `SSHLog.failure`).
  func failure(_ host: String, _ target: ExecutionTarget, status: Int32) -> String {
    SSHLog.failure(
      host: host, target: target, status: status,
      log: (try? String(contentsOfFile: logPath(host), encoding: .utf8)) ?? "",
      hostKeyPolicy: commandLine.hostKeyPolicy, knownHostsFile: commandLine.knownHostsFile)
  }

  /// Stops the remote task processes whose name starts with `prefix` (or is `prefix`, when
  /// `exact`), through the host's master; `then` runs when the remote side answered or 3 s passed.
  func stopRemote(_ host: String, prefix: String, exact: Bool, then: (@Sendable () -> Void)? = nil) {
    guard let target = targets[host] else {
      then?()
      return
    }
    let pattern = RemoteStopper.pattern(prefix: prefix, exact: exact)
    stopper.stop(commandLine.remoteStop(target, controlPath: controlPath(host), pattern: pattern), then: then)
  }

  public func kill(host: ScheduledHost, task: Int) {
    if builtinKill(host: host.name, task: task) { return }
    guard let child = lock.withLock({ running[TaskKey(host: host.name, task: task)] }) else { return }
    // The remote process first (its session then ends by itself), the local ssh client after.
    let marker = stopper.taskMarker(host: index[host.name] ?? 0, task: task)
    stopRemote(host.name, prefix: marker, exact: true) { child.terminate(SIGTERM) }
  }

  public func disconnect(host: ScheduledHost) {
    if builtinDisconnect(host: host.name) { return }
    let stop: (MasterConnection.Stop, ChildProcess)? = lock.withLock {
      guard var master = connections[host.name] else { return nil }
      defer { connections[host.name] = master }
      return (master.state.close(), master.child)
    }
    sockets.unwatch(host: host.name)
    if let (how, child) = stop { self.stop(child, how) }
  }

  func stop(_ child: ChildProcess, _ how: MasterConnection.Stop) {
    switch how {
    case .none: break
    // A client still connecting is stopped (its exit then reports a failure nobody waits for).
    case .client: child.terminate(SIGTERM)
    // SIGTERM makes an ssh master close its sessions and the connection, and remove its socket.
    case .master: if child.pid > 0 { terminateMaster(child.pid) }
    }
  }

  /// Sends SIGTERM to a master, and again every 100 ms while it lives (for up to 5 s).
  ///
  /// OpenSSH's client loop sets a flag in its SIGTERM handler and checks it before it sleeps in
  /// poll(2) (9.2 has no ppoll there): a signal that lands between the check and the poll is
  /// seen only when the poll times out (ServerAliveInterval, 15 s). Seen here on about one
  /// master in 50 under load, holding up the run's end. A second signal wakes the poll.
  func terminateMaster(_ pid: pid_t) {
    Foundation.kill(pid, SIGTERM)
    retermination(pid, left: 50)
  }

  private func retermination(_ pid: pid_t, left: Int) {
    guard left > 0 else { return }
    terminations.asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in
      // Only while our reaper has not collected it, so the pid is still this master's.
      guard lock.withLock({ live[pid] != nil }) else { return }
      Foundation.kill(pid, SIGTERM)
      retermination(pid, left: left - 1)
    }
  }

  /// Closes every master connection still open and waits for the masters to exit (before the
  /// run directory, which holds the control sockets, is wiped), without blocking a thread:
  /// remote stops still on their way get 3 s, then are killed; masters get 5 s, then SIGKILL.
  public func close() async {
    await builtinClose()
    // Remote stops still on their way get a moment, then are ended: nothing outlives the run.
    await stopper.finish()
    sockets.stop()
    let stops: [(ChildProcess, MasterConnection.Stop)] = lock.withLock {
      var stops: [(ChildProcess, MasterConnection.Stop)] = []
      for (host, var master) in connections {
        stops.append((master.child, master.state.close()))
        connections[host] = master
      }
      return stops
    }
    for (child, how) in stops { stop(child, how) }
    if await !closing.settled(within: 5) {
      for child in lock.withLock({ Array(live.values) }) { child.terminate(SIGKILL) }
      _ = await closing.settled(within: 2)
    }
  }

  /// Kills every running task (second interrupt), without waiting.
  ///
  /// The remote processes are stopped through each host's master connection first; then (once
  /// every host answered, or after 4 s) the local ssh clients are killed, and the masters of
  /// hosts that still have a running task, since a master holds its sessions' pipes.
  public func killAll() {
    builtinKillAll()
    let hosts = lock.withLock { Set(running.keys.map(\.host)) }
    let group = DispatchGroup()
    for host in hosts {
      group.enter()
      stopRemote(host, prefix: stopper.hostPrefix(host: index[host] ?? 0), exact: false) { group.leave() }
    }
    let once = Once()
    let killLocal: @Sendable () -> Void = { [self] in
      guard once.claim() else { return }
      let (children, pids) = lock.withLock {
        let busy = Set(running.keys.map(\.host))
        return (
          Array(running.values),
          busy.compactMap { host in connections[host].flatMap { $0.state.isOpen ? $0.child.pid : nil } }
        )
      }
      for child in children { child.terminate(SIGKILL) }
      for pid in pids where pid > 0 { Foundation.kill(pid, SIGKILL) }
    }
    group.notify(queue: .global(), execute: killLocal)
    DispatchQueue.global().asyncAfter(deadline: .now() + 4, execute: killLocal)
  }
}
