import Foundation
import SixtyCalendar
import SixtyHistory
import SixtyProcess
import SixtyRun

/// One run the daemon asks for: the `sixty run` it stands for, and where its output goes.
public struct JobRunRequest: Sendable, Equatable {
  public var job: String
  public var playbook: String
  public var inventory: String
  public var policy: String?
  public var limit: String?
  public var trigger: RunTrigger
  public var scheduled: Date
  /// The time after which the run's hosts may not start (the job's window), if any.
  public var notAfter: Date?
  public var historyPath: String
  /// The file the run's stdout and stderr are appended to.
  public var logPath: String

  public init(
    job: String, playbook: String, inventory: String, policy: String?, limit: String?, trigger: RunTrigger,
    scheduled: Date, notAfter: Date?, historyPath: String, logPath: String
  ) {
    self.job = job
    self.playbook = playbook
    self.inventory = inventory
    self.policy = policy
    self.limit = limit
    self.trigger = trigger
    self.scheduled = scheduled
    self.notAfter = notAfter
    self.historyPath = historyPath
    self.logPath = logPath
  }
}

extension JobRunRequest {
  /// The run as `sixty run` takes it: the job's playbook, inventory, policy and limit, without a
  /// progress line, recorded as the job's run in the daemon's history.
  public var runRequest: RunRequest {
    var request = RunRequest(source: .playbook(path: playbook))
    request.inventory = inventory
    request.policy = policy
    request.limit = limit.map(HostLimit.selector)
    request.progress = false
    request.notAfter = notAfter
    request.history = HistorySettings(path: historyPath)
    request.history.job = job
    request.history.trigger = trigger
    request.history.scheduledFor = scheduled
    return request
  }

  func requestJSON() throws -> [UInt8] { Array(try JSONEncoder().encode(runRequest)) }
}

/// Starts the runs of the jobs daemon.
public protocol RunLauncher: Sendable {
  /// Starts `run` and returns its process id; `exited` is called once, with that id and the exit
  /// status (or 128+signal), when it has ended.
  /// - Throws: an error whose description says why the run could not start.
  func launch(_ run: JobRunRequest, exited: @escaping @Sendable (pid_t, Int32) -> Void) throws -> pid_t
}

/// A launch failure, as a sentence naming what is at fault.
public struct JobsError: Error, CustomStringConvertible, Sendable {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// Runs `sixty run` children: each in its own process group (a terminal's Ctrl-C reaches the
/// daemon only), stdin from /dev/null, stdout and stderr appended to a 0600 log file.
public struct SixtyRunLauncher: RunLauncher {
  /// The `sixty` binary to run.
  public let sixty: String

  public init(sixty: String) { self.sixty = sixty }

  /// The command line of every run: the request itself goes on its standard input.
  public var arguments: [String] { [sixty, "run-request"] }

  public func launch(_ run: JobRunRequest, exited: @escaping @Sendable (pid_t, Int32) -> Void) throws -> pid_t
  {
    let directory = URL(fileURLWithPath: run.logPath).deletingLastPathComponent().path
    try FileManager.default.createDirectory(
      atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    do {
      let child = try ChildProcess.start(
        arguments,
        SpawnOptions(
          stdin: .bytes(try run.requestJSON(), then: nil), output: .appending(to: run.logPath), group: .own,
          defaultSignals: [SIGINT, SIGTERM, SIGHUP, SIGPIPE])
      ) { exited($0.pid, $0.status) }
      return child.pid
    } catch let error as ProcessError {
      let reason = String(cString: strerror(error.code))
      if case .open = error.step { throw JobsError("cannot open the run log \(run.logPath): \(reason)") }
      throw JobsError("cannot start \(arguments[0]): \(reason)")
    }
  }
}
