import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SixtyCalendar
import SixtyCore
import SixtyHistory
import SixtyJobs
import SixtyRun

struct JobsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "jobs",
    abstract: "Scheduled maintenance jobs.",
    subcommands: [Next.self, Daemon.self])

  struct Daemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run the jobs on their schedules until stopped.",
      discussion: """
        Each fire runs `sixty run` as a child process, recorded in the run history; one run per \
        job at a time (overlap: skip or queue). Fires missed while the daemon was down run once \
        on start when the job says catch_up: once. SIGHUP reloads the jobs file (a bad file is \
        reported and the previous schedule kept). SIGTERM or SIGINT stop it gracefully: no new \
        fires, and each running run finishes (shutdown: finish) or is interrupted cleanly \
        (shutdown: abort). Logs are logfmt lines on standard error; each run's output goes to \
        a log file under --log-dir.
        """)

    @Option(name: .long, help: "The jobs file (YAML).")
    var jobs: String

    @Option(name: .long, help: "Where each run's output is written (default: logs/ next to the history).")
    var logDir: String?

    @Option(name: .long, help: "Log level: debug, info, notice, warning or error.")
    var logLevel: String = "info"

    @OptionGroup var history: HistoryOptions

    func validate() throws {
      if history.noHistory {
        throw ValidationError(
          "the daemon needs the run history (for job state and host locks); drop --no-history.")
      }
      if Logger.Level(rawValue: logLevel) == nil {
        throw ValidationError("--log-level '\(logLevel)' is not one of debug, info, notice, warning, error.")
      }
    }

    func run() async throws {
      let level = Logger.Level(rawValue: logLevel) ?? .info
      LoggingSystem.bootstrap { label in
        var handler = LogfmtHandler(label: label)
        handler.logLevel = level
        return handler
      }
      let logger = Logger(label: "sixty.jobs")
      let store = try history.open()
      let logs = logDir ?? (History.localDirectory(forHistory: store.reopenPath) + "/logs")
      // Each job's playbook, inventory and policy are checked too: a job that cannot run is refused now.
      let (loaded, diagnostics) = JobsCheck.load(path: jobs)
      printDiagnostics(diagnostics)
      guard let loaded else {
        throw CLIError("the jobs file \(jobs) has errors; the daemon did not start.", code: 2)
      }
      let notifier = Notifier(
        history: store, logger: logger, version: SixtyCommand.configuration.version)
      let daemon = JobsDaemon(
        jobsPath: jobs, jobs: loaded, history: store, logDirectory: logs,
        launcher: SixtyRunLauncher(sixty: Self.sixtyExecutable), notifier: notifier, logger: logger)
      let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(
          services: [.init(service: daemon)], gracefulShutdownSignals: [.sigterm, .sigint],
          cancellationSignals: [.sigquit], logger: logger))
      try await group.run()
    }

    /// This very `sixty` binary, so runs use the same version as the daemon.
    static var sixtyExecutable: String {
      if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        return path
      }
      let argument = CommandLine.arguments[0]
      return argument.hasPrefix("/") ? argument : FileManager.default.currentDirectoryPath + "/" + argument
    }
  }

  struct Next: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Preview the next fire times of each job (a dry run of the schedules).")

    @Option(name: .long, help: "The jobs file (YAML).")
    var jobs: String

    @Option(name: .long, help: "How many fire times per job.")
    var count: Int = 5

    @Option(name: .long, help: "Start from this time (ISO 8601, e.g. 2026-12-24T00:00:00Z) instead of now.")
    var from: String?

    @Option(name: .long, help: "Output format: text or json.")
    var format: PlanFormat = .text

    func validate() throws {
      guard (1...1000).contains(count) else {
        throw ValidationError("--count must be 1 to 1000, not \(count).")
      }
      if let from, ISO8601DateFormatter().date(from: from) == nil {
        throw ValidationError(
          "--from '\(from)' is not an ISO 8601 time; expected something like 2026-12-24T00:00:00Z.")
      }
      if format == .dot { throw ValidationError("--format must be text or json.") }
    }

    func run() throws {
      let start = from.flatMap { ISO8601DateFormatter().date(from: $0) } ?? Date()
      let (loaded, diagnostics) = JobsCheck.load(path: jobs, now: start)
      printDiagnostics(diagnostics)
      guard let loaded else { throw ExitCode(2) }
      let utc = ISO8601DateFormatter()
      var text = ""
      var w = JSONWriter()
      w.beginObject()
      w.field("from", utc.string(from: start))
      w.key("jobs")
      w.beginArray()
      for preview in JobSchedules.preview(loaded, count: count, from: start) {
        let (job, times) = (preview.job, preview.times)
        let local = ISO8601DateFormatter()
        local.timeZone = job.timeZone
        text +=
          "\(job.name)  \(job.schedule) (\(JobSchedules.zoneName(job.timeZone)))\(job.enabled ? "" : "  [disabled]")\n"
        for time in times {
          text += "  \(local.string(from: time))"
          text +=
            job.timeZone.identifier == "UTC" || job.timeZone.identifier == "GMT"
            ? "\n" : "  (\(utc.string(from: time)))\n"
        }
        if times.isEmpty { text += "  (no fire time)\n" }
        w.beginObject()
        w.field("name", job.name)
        w.field("schedule", job.schedule.description)
        w.field("timezone", JobSchedules.zoneName(job.timeZone))
        w.field("enabled", job.enabled)
        w.key("next")
        w.beginArray()
        for time in times { w.value(utc.string(from: time)) }
        w.endArray()
        w.endObject()
      }
      w.endArray()
      w.endObject()
      if format == .json {
        writeStandardOutput(w.bytes + [UInt8(ascii: "\n")])
      } else {
        writeStandardOutput(Array(text.utf8))
      }
    }
  }
}
