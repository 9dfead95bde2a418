import ArgumentParser
import Foundation
import SixtyHistory
import SixtyReport
import SixtyRun

struct RunsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "runs",
    abstract: "Look back at runs: list them, show one, write its reports, run its failed hosts again.",
    subcommands: [List.self, Show.self, Report.self, Rerun.self])

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List runs, newest first.")

    @Option(name: .long, help: "Only runs of this scheduled job.")
    var job: String?

    @Option(name: .long, help: "Only runs started since this time (ISO 8601, or an age like 2h or 7d).")
    var since: String?

    @Option(name: .long, help: "At most this many runs.")
    var limit: Int = 50

    @Option(name: .long, help: "Output format: text or json.")
    var format: ListFormat = .text

    @OptionGroup var history: HistoryOptions

    func validate() throws {
      if let since, parseTime(since) == nil {
        throw ValidationError(
          "--since '\(since)' is neither an ISO 8601 time (2026-12-24T00:00:00Z) nor an age (2h, 7d).")
      }
      guard limit >= 1 else { throw ValidationError("--limit must be at least 1, not \(limit).") }
    }

    func run() throws {
      let store = try history.open()
      let listing: RunListing
      do {
        listing = try RunListing.load(
          from: store, job: job, since: since.flatMap { parseTime($0) }, limit: limit)
      } catch {
        throw CLIError(error.description, code: 2)
      }
      writeStandardOutput(format == .json ? listing.json() : Array(listing.text().utf8))
    }
  }

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one run: its hosts, tasks and output.")

    @Argument(help: "The run's id (from `sixty runs list`), or a sharded run's run id (--run-id).")
    var id: String

    @Option(name: .long, help: "Only this host, with every task's output.")
    var host: String?

    @Option(name: .long, help: "Output format: text or json.")
    var format: ListFormat = .text

    @OptionGroup var history: HistoryOptions

    func run() throws {
      let store = try history.open()
      let detail: RunDetail
      do {
        detail = try RunDetail.load(from: store, run: id, host: host)
      } catch {
        throw CLIError(error.description, code: 2)
      }
      writeStandardOutput(format == .json ? detail.json() : Array(detail.text().utf8))
    }
  }

  struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Write a recorded run's reports: HTML (with a per-host timeline), JSON or JUnit XML.",
      discussion: """
        With no file option, the JSON report is written to standard output. Task output in these \
        reports is what the history keeps: the last 4 KB of each stream.
        """)

    @Argument(help: "The run's id (from `sixty runs list`).")
    var id: Int64

    @Option(name: .long, help: "Write a self-contained HTML report to this file.")
    var html: String?

    @Option(name: .long, help: "Write the JSON report (the format of `sixty run --report`) to this file.")
    var json: String?

    @Option(name: .long, help: "Write JUnit XML to this file.")
    var junit: String?

    @OptionGroup var history: HistoryOptions

    func run() throws {
      let store = try history.open()
      let found: RunReport?
      do {
        found = try RunReport.load(from: store, runID: id)
      } catch {
        throw CLIError(error.description, code: 2)
      }
      guard let report = found else {
        throw CLIError("there is no run \(id) in \(store.path); `sixty runs list` shows the runs.", code: 2)
      }
      let outputs: [(path: String?, name: String, render: () -> [UInt8])] = [
        (html, "HTML report", { Array(report.html().utf8) }),
        (json, "JSON report", { report.json() }),
        (junit, "JUnit report", { Array(report.junit().utf8) }),
      ]
      guard outputs.contains(where: { $0.path != nil }) else {
        writeStandardOutput(report.json())
        return
      }
      for output in outputs {
        guard let path = output.path else { continue }
        do {
          try Data(output.render()).write(to: URL(fileURLWithPath: path))
        } catch {
          throw CLIError(
            "cannot write the \(output.name) of run \(id) to \(path): \(error.localizedDescription)", code: 2)
        }
        print("\(output.name): \(path)")
      }
    }
  }
}
