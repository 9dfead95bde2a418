import Foundation
import InstanceConnect
import SixtyCore
import SixtyExecution
import SixtyScheduler

/// What a run reports as it goes, in order. A `RunConsole` turns them into what the operator
/// sees; the run itself prints nothing.
public enum RunEvent: Sendable {
  /// Problems found loading and planning (for standard error).
  case diagnostics([Diagnostic])
  /// The plan as text: a dry run, a refusal, a plan shown before running.
  case plan(String)
  /// A warning before the run starts (for standard error, without a trailing newline).
  case warning(String)
  /// A line of the run's own: its history record, wiped key directories, interrupts, report
  /// files written.
  case line(String)
  /// More detail, for `-v` (level 1: keys, users, push and authentication timings) and `-vv`
  /// (level 2: every ssh command line too); sent only at the levels the run asks for.
  case detail(level: Int, String)
  /// A host's key push moved on from Instance Connect endpoints that failed (a connection error,
  /// a timeout, an HTTP 5xx answer) to one that answered; later pushes start with that one.
  case pushFailover(PushFailover)
  /// A play starts on this many hosts.
  case playStarted(name: String, hosts: Int)
  /// The scheduler's progress within the current play.
  case scheduler(SchedulerEvent)
  /// A task ended on a host, with its output.
  case taskFinished(play: String, task: String, capture: TaskCapture)
  /// Every play is done (or stopped); the recap follows.
  case finished(RunSummary)
}

/// Which endpoints a host's key push left, why, and which one took it.
public struct PushFailover: Sendable, Equatable {
  public var host: String
  /// In the order they were tried.
  public var failures: [EndpointFailure]
  /// The endpoint that answered.
  public var servedBy: String

  public init(host: String, failures: [EndpointFailure], servedBy: String) {
    self.host = host
    self.failures = failures
    self.servedBy = servedBy
  }

  /// `sixty: web-1: key push: http://b1:8600 failed (the connection was refused); pushed through
  /// http://b2:8600`.
  public var text: String {
    let failed = failures.map { "\($0.endpoint) failed (\($0.reason))" }.joined(separator: ", ")
    return "sixty: \(host): key push: \(failed); pushed through \(servedBy)"
  }
}

/// How the plays ended, for the recap.
public struct RunSummary: Sendable {
  public struct Play: Sendable {
    public var name: String
    /// Host names, in the order of `result.hosts`.
    public var hosts: [String]
    public var result: RunResult
  }
  public var plays: [Play]
  /// The play that a signal kept from starting.
  public var stoppedBefore: String?
  /// Every task's output.
  public var outputs: OutputCollector
}

/// Receives a run's events; called from any thread, one event at a time per source.
public protocol RunConsole: Sendable {
  func handle(_ event: RunEvent)
}

/// A run's events as an `AsyncStream`, for consumers that prefer to iterate them (a service
/// relaying runs, a test). Unbounded: the run never waits for its reader.
public struct StreamingConsole: RunConsole {
  let continuation: AsyncStream<RunEvent>.Continuation

  /// The stream and the console feeding it; call `finish()` when the run returns.
  public static func make() -> (events: AsyncStream<RunEvent>, console: StreamingConsole) {
    let (stream, continuation) = AsyncStream.makeStream(of: RunEvent.self)
    return (stream, StreamingConsole(continuation: continuation))
  }

  public func handle(_ event: RunEvent) { continuation.yield(event) }

  public func finish() { continuation.finish() }
}
