import Foundation
import Testing

/// A 500-host run on the local fleet: 500 loopback addresses (127.20.x.y), 16 to an sshd, each
/// address its own host with its own agent, instance id and broker token.
@Suite(.serialized) struct LargeFleetEndToEndTests {
  struct Sample {
    var descriptors = 0
    var rssKB = 0
    var children = 0
  }

  /// Open descriptors, resident memory and direct children of `pid` now.
  static func sample(_ pid: pid_t) -> Sample {
    // (children are counted by the caller, from /proc, less often)
    var result = Sample()
    result.descriptors =
      ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
      result.rssKB =
        Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
    return result
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func fiveHundredHostsRunWithBoundedDescriptorsAndMemory() throws {
    let started = Date()
    let count = Int(ProcessInfo.processInfo.environment["SIXTY_DEBUG_FLEET"] ?? "") ?? 500
    let fleet = try LocalFleet(count: count, pushRate: 100_000, hostsPerSSHD: 16, agentTimeout: "5s")
    defer {
      fleet.stop()
      if count == 500 { fleet.remove() }
    }
    let setUp = Date().timeIntervalSince(started)
    let playbook = fleet.directory + "/fleet.yml"
    try """
    name: fleet
    hosts: all
    policy: {concurrency: 20, push: {rate: 200, burst: 20}}
    tasks:
      - name: where
        shell: echo "$SSH_CONNECTION"
    """.write(toFile: playbook, atomically: true, encoding: .utf8)
    let report = fleet.directory + "/report.json"
    // From a shell whose soft limit on open files is 256: Sixty raises it itself.
    let run = try LocalProcess(
      "/bin/sh",
      [
        "-c", "ulimit -Sn 256; exec \"$0\" \"$@\"", SixtyBinary.path, "run", playbook, "-i",
        try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--report", report, "--no-progress",
      ], environment: fleet.environment, logPath: fleet.directory + "/run.log")
    defer { run.stop() }
    var peak = Sample()
    var samples = 0
    let runStarted = Date()
    let deadline = Date().addingTimeInterval(600)
    while run.isRunning && Date() < deadline {
      let now = Self.sample(run.pid)
      peak.descriptors = max(peak.descriptors, now.descriptors)
      peak.rssKB = max(peak.rssKB, now.rssKB)
      samples += 1
      if samples % 5 == 0 { peak.children = max(peak.children, run.children.count) }
      Thread.sleep(forTimeInterval: 0.05)
    }
    let took = Date().timeIntervalSince(runStarted)
    #expect(!run.isRunning, "the 500-host run did not finish in 10 minutes")
    let log = run.log
    #expect(run.exitStatus == 0, "\(log.suffix(3000))\nsshd: \(fleet.hosts[0].sshLog.suffix(3000))")
    let data = try #require(FileManager.default.contents(atPath: report))
    let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    let plays = try #require(json["plays"] as? [[String: Any]])
    let hosts = try #require(plays.first?["hosts"] as? [String: [String: Any]])
    #expect(hosts.count == 500)
    let ok = hosts.values.filter { $0["status"] as? String == "ok" }.count
    let failed = hosts.filter { $0.value["status"] as? String != "ok" }
    #expect(
      ok == 500,
      "\(500 - ok) hosts were not ok, e.g. \(failed.keys.sorted().prefix(5)): \(String(describing: failed.first?.value["message"]))"
    )
    // Every host answered from its own address: "web-N | CLIENT PORT ADDRESS PORT" ($SSH_CONNECTION).
    var seen: [String: String] = [:]
    for line in log.split(separator: "\n") {
      let parts = line.split(separator: " ")
      if parts.count == 6, parts[1] == "|" { seen[String(parts[0])] = parts[4] + " " + parts[5] }
    }
    let wrong = fleet.hosts.filter { seen[$0.name] != "\($0.address) \($0.port)" }.map(\.name)
    #expect(
      wrong.isEmpty, "\(wrong.count) hosts did not answer from their own address, e.g. \(wrong.prefix(5))")
    // The soft limit was raised, and the run stayed well inside it and inside its memory.
    #expect(peak.descriptors < 1024, "peak open descriptors \(peak.descriptors)")
    #expect(peak.rssKB < 256 * 1024, "peak resident memory \(peak.rssKB / 1024) MB")
    print(
      String(
        format:
          "500-host run: fleet set up in %.1f s; run %.1f s; peak %d open descriptors, %d MB resident, %d child processes",
        setUp, took, peak.descriptors, peak.rssKB / 1024, peak.children))
  }
}
