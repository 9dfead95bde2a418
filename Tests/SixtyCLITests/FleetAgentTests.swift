import Foundation
import Testing

/// A build under a private directory (a clone in root's 0700 home) still gives the local fleet an
/// agent sshd can run as `nobody`: the fleet's own root-owned copy, for the tests' `LocalFleet` and
/// for `scripts/fleet` (what `make demo` uses).
@Suite(.serialized) struct FleetAgentTests {
  /// A copy of the built agent (and, with `sixty`, a link to the built CLI) in `bin` under a new
  /// 0700 directory; the caller removes the directory it returns.
  func privateBuild(sixty: Bool = false) throws -> (root: String, bin: String) {
    var template = Array((FileManager.default.temporaryDirectory.path + "/sixty-private-XXXXXX").utf8CString)
    let root = String(cString: try #require(mkdtemp(&template)))
    chmod(root, 0o700)
    let bin = root + "/build/debug"
    try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
    try FleetAgent.copyExecutable(LocalFleet.agentPath, to: bin + "/sixty-agent")
    if sixty {
      try FileManager.default.createSymbolicLink(
        atPath: bin + "/sixty", withDestinationPath: SixtyBinary.path)
    }
    return (root, bin)
  }

  @Test func theCheckNamesWhatBlocksTheAgentsUser() throws {
    let (root, bin) = try privateBuild()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let blocked = try #require(
      FleetAgent.problem(running: bin + "/sixty-agent", as: "nobody", asCommand: false))
    if getuid() == 0 {
      #expect(blocked.contains("who cannot enter \(root) (mode 700, owner root)"), "\(blocked)")
    }
    // sshd's own rule: root-owned and writable by neither group nor others, all the way up.
    chmod(root + "/build", 0o775)
    let refused = try #require(FleetAgent.problem(running: bin + "/sixty-agent", as: "root", asCommand: true))
    #expect(refused.contains("sshd refuses an AuthorizedKeysCommand under "), "\(refused)")
    #expect(
      refused.contains(" (mode 1777, owner root)") || refused.contains("/build (mode 775"), "\(refused)")
    #expect(FleetAgent.problem(running: "/bin/sh", as: "nobody", asCommand: true) == nil)
    #expect(FleetAgent.problem(running: root + "/missing", as: "nobody", asCommand: false) != nil)
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aFleetOfAPrivateBuildLogsIn() throws {
    let (root, bin) = try privateBuild()
    defer { try? FileManager.default.removeItem(atPath: root) }
    var home: String?
    try withLocalFleet(LocalFleet(count: 2, agent: bin + "/sixty-agent")) { fleet in
      let agentHome = try #require(fleet.agentHome)
      home = agentHome.directory
      #expect(FleetAgent.problem(running: agentHome.path, as: "nobody", asCommand: true) == nil)
      let result = try SixtyBinary.run(
        [
          "exec", "all", "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--no-progress",
          "--",
          "echo", "in",
        ], environment: fleet.environment)
      #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)\n\(fleet.hosts[0].sshLog)")
      #expect(
        result.stdout.contains("web-1 | in") && result.stdout.contains("web-2 | in"), "\(result.stdout)")
    }
    let removed = try #require(home)
    #expect(
      !FileManager.default.fileExists(atPath: removed), "the fleet's agent directory goes when it stops")
  }

  /// `scripts/fleet up` from binaries under a 0700 directory, into a directory under it too:
  /// `. DIR/env` is all a shell needs to run against it; `scripts/fleet down DIR` stops it all.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func theFleetScriptRunsAPrivateBuild() throws {
    let (root, bin) = try privateBuild(sixty: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let script = SixtyBinary.packageRoot.appendingPathComponent("scripts/fleet").path
    let dir = root + "/fleet"
    var env = ProcessInfo.processInfo.environment
    env["SIXTY_BIN_DIR"] = bin
    // With --certificates the broker is also a certificate authority: hosts take both logins.
    let up = try runProgram(script, ["up", "--certificates", dir, "2"], environment: env)
    defer { _ = try? runProgram(script, ["down", dir], environment: env) }
    #expect(up.status == 0, "\(up.stdout)\n\(up.stderr)")
    #expect(up.stdout.split(separator: "\n").last.map(String.init) == dir, "up prints the fleet's directory")
    let run = try runProgram(
      "/bin/bash",
      [
        "-c", ". \"$1/env\" && sixty exec all --no-progress -- echo in && echo \"$SIXTY_INVENTORY\"", "-",
        dir,
      ],
      environment: env)
    #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
    #expect(run.stdout.contains("host-1 | in") && run.stdout.contains("host-2 | in"), "\(run.stdout)")
    #expect(run.stdout.hasSuffix(dir + "/inventory.yml\n"))
    let certificates = try runProgram(
      "/bin/bash",
      [
        "-c",
        ". \"$1/env\" && echo 'push: {mode: certificate}' > \"$1/certs.yml\" && sixty exec all --no-progress --report \"$1/certs.json\" --policy \"$1/certs.yml\" -- echo cert",
        "-", dir,
      ],
      environment: env)
    #expect(certificates.status == 0, "\(certificates.stdout)\n\(certificates.stderr)")
    #expect(
      certificates.stdout.contains("host-1 | cert") && certificates.stdout.contains("host-2 | cert"),
      "\(certificates.stdout)")
    let report = try String(contentsOfFile: dir + "/certs.json", encoding: .utf8)
    #expect(report.contains("\"mode\":\"certificate\""), "\(report.prefix(2000))")
    let agentHome = try String(contentsOfFile: dir + "/agent-home", encoding: .utf8)
      .trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(FileManager.default.fileExists(atPath: agentHome + "/sixty-agent"))
    let down = try runProgram(script, ["down", dir], environment: env)
    #expect(down.status == 0, "\(down.stderr)")
    #expect(!FileManager.default.fileExists(atPath: agentHome), "down removes the fleet's agent directory")
    #expect(!FileManager.default.fileExists(atPath: dir + "/pids"))
  }
}
