import Foundation
import SixtyProcess
import SixtyScheduler
import Testing

@testable import SixtyExecution
@testable import SixtyRun

/// What `sixty run` prints besides the tasks' own lines: `--group-output` blocks, the "-- end"
/// lines held back for output still to come, and the progress line's counts.
struct ConsoleOutputTests {
  func capture(_ host: String, _ status: Int32, _ stdout: String, stderr: String = "") -> TaskCapture {
    var out = CappedBuffer(cap: 1 << 20)
    out.append(ArraySlice(Array(stdout.utf8)))
    var err = CappedBuffer(cap: 1 << 20)
    err.append(ArraySlice(Array(stderr.utf8)))
    let now = Date(timeIntervalSince1970: 1_000)
    return TaskCapture(
      host: host, task: 0, status: status, stdout: out, stderr: err, started: now, ended: now)
  }

  @Test func groupedOutputShowsEachTasksLastAttemptOnceWithItsHostsInNameOrder() {
    let outputs = OutputCollector()
    outputs.add(play: "p", task: "check", capture: capture("web-10", 0, "fine\n"))
    outputs.add(play: "p", task: "check", capture: capture("web-2", 1, "", stderr: "flaky\n"))
    outputs.add(play: "p", task: "check", capture: capture("web-1", 0, "fine\n"))
    // web-2's retry succeeds: only that attempt is shown.
    outputs.add(play: "p", task: "check", capture: capture("web-2", 0, "fine\n"))
    outputs.add(play: "p", task: "other", capture: capture("web-3", 3, "no\n"))
    outputs.add(play: "p", task: "other", capture: capture("web-1", 0, "yes\n"))
    #expect(
      outputs.grouped() == """
        ---------------- check: web-1,web-2,web-10 ----------------
        exit 0
        fine
        ---------------- other: web-1 ----------------
        exit 0
        yes
        ---------------- other: web-3 ----------------
        exit 3
        no

        """)
  }

  @Test func groupedOutputKeepsTheSameTaskNameInTwoPlaysApart() {
    let outputs = OutputCollector()
    outputs.add(play: "first", task: "hi", capture: capture("a", 0, "one\n"))
    outputs.add(play: "second", task: "hi", capture: capture("a", 0, "two\n"))
    let text = outputs.grouped()
    #expect(text.contains("---------------- first / hi: a ----------------\nexit 0\none\n"), "\(text)")
    #expect(text.contains("---------------- second / hi: a ----------------\nexit 0\ntwo\n"), "\(text)")
  }

  @Test(arguments: [
    ("web-2", "web-10", true), ("web-10", "web-2", false), ("a", "b", true), ("b", "a", false),
    ("web-1", "web-1", false), ("web", "web-1", true), ("web-01", "web-1", false), ("web-1", "web-01", true),
    ("db-9", "web-1", true), ("10.0.0.9", "10.0.0.10", true), ("host-007", "host-8", true),
  ])
  func hostsSortByNameWithNumbersAsNumbers(_ a: String, _ b: String, _ precedes: Bool) {
    #expect(HostOrder.precedes(a, b) == precedes)
  }

  @Test func aHostsEndLineWaitsForTheOutputOfItsTasksInFlight() {
    let endings = EndLines()
    endings.started("web-1")
    endings.started("web-2")
    // web-1's task finished before its host ended: its end prints at once.
    #expect(endings.finished("web-1") == nil)
    #expect(endings.shouldPrintEnd("web-1", line: "-- end web-1 ok"))
    // web-2 timed out: its end comes first, and waits for the killed task's output.
    #expect(!endings.shouldPrintEnd("web-2", line: "-- end web-2 timed out"))
    #expect(endings.finished("web-2") == "-- end web-2 timed out")
    // An end whose output never comes is printed when the play finishes.
    endings.started("web-3")
    #expect(!endings.shouldPrintEnd("web-3", line: "-- end web-3 failed"))
    #expect(endings.flush() == ["-- end web-3 failed"])
    #expect(endings.flush().isEmpty)
  }

  @Test func theProgressLinePrintedWithAnEndLineCountsThatEnd() {
    let printer = LinePrinter()
    let board = ProgressBoard(printer: printer)
    board.play = "patch"
    board.total = 3
    printer.status = ""
    board.handle(.push(host: "web-1"))
    board.handle(.start(host: "web-1", task: "check"))
    board.handle(.end(host: "web-1", status: .failed))
    let status = printer.lock.withLock { printer.status } ?? ""
    #expect(status.contains("patch: 1/3 done, 1 failed, 0 running"), "\(status)")
    board.handle(.push(host: "web-2"))
    let next = printer.lock.withLock { printer.status } ?? ""
    #expect(next.contains("1/3 done, 1 failed, 1 running: web-2 (pushing key)"), "\(next)")
  }
}
