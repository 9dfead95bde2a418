import ArgumentParser
import Foundation
import SixtyCore
import SixtySchedule

struct JobsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "jobs",
    abstract: "Scheduled maintenance jobs.",
    subcommands: [Next.self])

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
      guard (1...1000).contains(count) else { throw ValidationError("--count must be 1 to 1000, not \(count).") }
      if let from, ISO8601DateFormatter().date(from: from) == nil {
        throw ValidationError("--from '\(from)' is not an ISO 8601 time; expected something like 2026-12-24T00:00:00Z.")
      }
      if format == .dot { throw ValidationError("--format must be text or json.") }
    }

    func run() throws {
      let (loaded, diagnostics) = JobsFile.load(path: jobs)
      printDiagnostics(diagnostics)
      guard let loaded else { throw ExitCode(2) }
      let start = from.flatMap { ISO8601DateFormatter().date(from: $0) } ?? Date()
      let utc = ISO8601DateFormatter()
      var text = ""
      var w = JSONWriter()
      w.beginObject()
      w.field("from", utc.string(from: start))
      w.key("jobs")
      w.beginArray()
      for job in loaded {
        let local = ISO8601DateFormatter()
        local.timeZone = job.timeZone
        var times: [Date] = []
        var at = start
        while times.count < count, let next = job.calendar.next(after: at) {
          times.append(next)
          at = next
        }
        text += "\(job.name)  \(job.schedule) (\(job.timeZone.identifier))\(job.enabled ? "" : "  [disabled]")\n"
        for time in times {
          text += "  \(local.string(from: time))"
          text += job.timeZone.identifier == "UTC" || job.timeZone.identifier == "GMT" ? "\n" : "  (\(utc.string(from: time)))\n"
        }
        if times.isEmpty { text += "  (no fire time within a year)\n" }
        w.beginObject()
        w.field("name", job.name)
        w.field("schedule", job.schedule.description)
        w.field("timezone", job.timeZone.identifier)
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
