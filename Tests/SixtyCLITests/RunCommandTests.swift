import Foundation
import Testing

/// `sixty run` and `sixty exec` decisions made before anything is pushed.
@Suite struct RunCommandTests {
  @Test func dryRunPrintsThePlanAndTouchesNothing() throws {
    let result = try SixtyBinary.run(
      [
        "run", "playbooks/demo.yml", "-i", "playbooks/inventory.yml", "--dry-run", "--endpoint",
        "http://127.0.0.1:9",
      ])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains("demo"))
    let exec = try SixtyBinary.run(
      [
        "exec", "all", "-i", "playbooks/inventory.yml", "--dry-run", "--endpoint", "http://127.0.0.1:9", "--",
        "uptime",
      ])
    #expect(exec.status == 0, "\(exec.stderr)")
  }

  @Test(.enabled(if: LocalFleet.hasFaketime, "needs libfaketime (make test installs it)"))
  func aPlayOutsideItsMaintenanceWindowDoesNotStart() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-run-\(UUID().uuidString)")
      .path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try """
    name: nightly
    hosts: all
    policy:
      windows:
        - {name: new-year, schedule: "0 0 1 1 *", duration: 1m}
    tasks:
      - name: t
        command: ["true"]
    """.write(toFile: dir + "/play.yml", atomically: true, encoding: .utf8)
    // On a clock that starts in June 2026 (the window opens on 1 January): the same answer
    // whatever today's date is.
    let result = try SixtyBinary.run(
      ["run", dir + "/play.yml", "-i", "playbooks/inventory.yml", "--endpoint", "http://127.0.0.1:9"],
      at: "2026-06-01 12:00:00")
    #expect(result.status == 4, "\(result.stderr)")
    #expect(
      result.stderr.contains(
        "the play 'nightly' may start hosts only inside its maintenance window 'new-year', and none is open (or all are past their cutoff) now. The next opening is 'new-year' at 2027-01-01T00:00:00Z."
      ), "\(result.stderr)")
  }

  @Test func badInputExitsTwo() throws {
    let cases: [([String], String)] = [
      (["run", "playbooks/demo.yml"], "sixty run needs an inventory"),
      (
        ["run", "playbooks/demo.yml", "-i", "playbooks/inventory.yml", "--forks", "0"],
        "--forks must be at least 1"
      ),
      (["exec", "all", "-i", "playbooks/inventory.yml"], "Give the command after --"),
      (["exec", "web,,db", "-i", "playbooks/inventory.yml", "--", "true"], "has an empty term"),
    ]
    for (arguments, fragment) in cases {
      let result = try SixtyBinary.run(arguments)
      #expect(result.status == 2, "\(arguments): \(result.stderr)")
      #expect(result.stderr.contains(fragment), "\(arguments): \(result.stderr)")
    }
  }
}
