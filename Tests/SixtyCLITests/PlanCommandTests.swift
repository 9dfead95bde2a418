import Foundation
import Testing

@Suite(.serialized) struct PlanCommandTests {
  @Test func planShowsEachWindowsNextOpening() throws {
    let result = try SixtyBinary.run(["plan", "playbooks/disk-cleanup.yml", "-i", "playbooks/inventory.yml"])
    #expect(result.status == 0, "\(result.stderr)")
    let line = result.stdout.split(separator: "\n").first {
      $0.contains("nightly (play 'nightly disk cleanup'): ")
    }
    let state = try #require(line.map(String.init), "\(result.stdout)")
    // 02:00-04:00 Berlin, no new host in the last 30 minutes.
    #expect(
      state.contains("closed; next opens ") && state.hasSuffix("T02:00:00+01:00")
        || state.contains("open now; hosts may start until ") || state.contains("past its cutoff"), "\(state)"
    )
  }

  @Test func exampleJobsFilePreviews() throws {
    let result = try SixtyBinary.run(
      ["jobs", "next", "--jobs", "playbooks/jobs.yml", "--count", "2", "--from", "2027-01-01T00:00:00Z"])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stderr.isEmpty)
    #expect(
      result.stdout == """
        nightly-cleanup  0 2 * * * (Europe/Berlin)
          2027-01-01T02:00:00+01:00  (2027-01-01T01:00:00Z)
          2027-01-02T02:00:00+01:00  (2027-01-02T01:00:00Z)
        weekly-patch  cron(0 4 ? * SUN#1 *) (America/New_York)
          2027-01-03T04:00:00-05:00  (2027-01-03T09:00:00Z)
          2027-02-07T04:00:00-05:00  (2027-02-07T09:00:00Z)
        uptime-probe  rate(15 minutes) (UTC)  [disabled]
          2027-01-01T00:15:00Z
          2027-01-01T00:30:00Z

        """, "\(result.stdout)")
  }

  @Test func validateExamplePlaybook() throws {
    let result = try SixtyBinary.run([
      "validate", "playbooks/rolling-restart.yml", "-i", "playbooks/inventory.yml",
    ])
    #expect(result.status == 0)
    #expect(result.stdout == "playbooks/rolling-restart.yml: ok (1 play, 4 tasks, 4 hosts)\n")
    #expect(result.stderr == "")
  }

  /// The examples follow their own advice: no value reaches a shell unquoted.
  @Test(arguments: ["demo", "fleet-uptime", "rolling-restart", "disk-cleanup", "deploy"])
  func examplePlaybooksGetNoQuotingAdvice(name: String) throws {
    let result = try SixtyBinary.run(["validate", "playbooks/\(name).yml"])
    #expect(!result.stderr.contains("warning:"), "\(result.stderr)")
  }

  static let unquotedNope =
    "p.yml:4:17: warning: '{{ nope }}' is inserted into the shell command of task 'a' unquoted: a value with spaces, quotes, ';' or '$(…)' would be read as shell syntax; write '{{ nope | quote }}' (or use 'command:', whose arguments are never parsed by a shell).\n"

  @Test func validateReportsEveryErrorWithExitTwo() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try """
    hosts: all
    tasks:
      - name: a
        shell: echo {{ nope }}
      - name: a
        command: [true]
    """.write(to: dir.appendingPathComponent("p.yml"), atomically: true, encoding: .utf8)
    try "hosts: {h1: {address: 127.0.0.1}}\n".write(
      to: dir.appendingPathComponent("i.yml"), atomically: true, encoding: .utf8)
    // Every stage at once, by position: the variable, the repeated name, the host a key cannot be
    // pushed to.
    let result = try SixtyBinary.run(["validate", "p.yml", "-i", "i.yml"], in: dir)
    #expect(result.status == 2)
    #expect(
      result.stderr == """
        i.yml:1:9: warning: the host 'h1' has no instance_id, and the play 'play 1' pushes its key through EC2 Instance Connect (or a broker) before connecting, so it will fail at its turn; expected 'instance_id: i-…' in its inventory entry (an aws-ec2 inventory gives every host one).
        p.yml:4:17: error: unknown variable 'nope' in task 'a' for host h1; define it in the play's vars, the inventory, or with -e nope=VALUE.
        p.yml:5:11: error: the task name 'a' is used twice in this play (first at line 3, column 11); expected unique names.
        2 errors, 1 warning.

        """)
    try "hosts: {h1: {address: 127.0.0.1, instance_id: i-00000000000000001}}\n".write(
      to: dir.appendingPathComponent("i.yml"), atomically: true, encoding: .utf8)
    let fixed = try String(contentsOf: dir.appendingPathComponent("p.yml"), encoding: .utf8)
      .replacingOccurrences(of: "  - name: a\n    command", with: "  - name: b\n    command")
    try fixed.write(to: dir.appendingPathComponent("p.yml"), atomically: true, encoding: .utf8)
    let second = try SixtyBinary.run(["validate", "p.yml", "-i", "i.yml"], in: dir)
    #expect(second.status == 2)
    #expect(
      second.stderr
        == "p.yml:4:17: error: unknown variable 'nope' in task 'a' for host h1; define it in the play's vars, the inventory, or with -e nope=VALUE.\n"
        + Self.unquotedNope + "1 error, 1 warning.\n"
    )
    let third = try SixtyBinary.run(["validate", "p.yml", "-i", "i.yml", "-e", "nope=1"], in: dir)
    #expect(third.status == 0)
    // Valid, with advice: the shell would parse whatever 'nope' holds.
    #expect(third.stderr == Self.unquotedNope)
  }

  @Test func policyRefusalExitsThree() throws {
    let result = try SixtyBinary.run([
      "validate", "playbooks/deploy.yml", "-i", "playbooks/inventory.yml", "--policy", "playbooks/policy.yml",
    ])
    #expect(result.status == 3)
    #expect(
      result.stderr
        == "playbooks/deploy.yml:3:10: error: policy refuses host db-1 in play 'migrate database': the host matches 'role=db', which requires --approve.\n"
    )
    let approved = try SixtyBinary.run([
      "validate", "playbooks/deploy.yml", "-i", "playbooks/inventory.yml", "--policy", "playbooks/policy.yml",
      "--approve",
    ])
    #expect(approved.status == 0)
  }

  @Test func planJSON() throws {
    let result = try SixtyBinary.run([
      "plan", "playbooks/rolling-restart.yml", "-i", "playbooks/inventory.yml", "--format", "json",
    ])
    #expect(result.status == 0)
    let object = try #require(
      try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    #expect(object["batches"] as? [[String]] == [["web-1"], ["web-2"], ["web-3", "web-4"]])
    let hosts = try #require(object["hosts"] as? [String: [String: Any]])
    #expect(hosts["web-2"]?["order"] as? [String] == ["drain", "restart", "health", "undrain"])
  }

  @Test func planTextAndDot() throws {
    let text = try SixtyBinary.run(["plan", "playbooks/fleet-uptime.yml", "-i", "playbooks/inventory.yml"])
    #expect(text.status == 0)
    #expect(text.stdout.contains("Play 1: fleet health check\n  hosts: 'all' -> 8 hosts\n"))
    #expect(text.stdout.contains("    1. uptime: command: uptime\n"))
    let dot = try SixtyBinary.run([
      "plan", "playbooks/deploy.yml", "-i", "playbooks/inventory.yml", "--format", "dot",
    ])
    #expect(dot.status == 0)
    #expect(dot.stdout.contains("p0_t1 -> p1_t0 [style=dashed"))
  }

  @Test func badFlagsExitTwo() throws {
    let format = try SixtyBinary.run([
      "plan", "playbooks/deploy.yml", "-i", "playbooks/inventory.yml", "--format", "xml",
    ])
    #expect(format.status == 2)
    #expect(format.stderr.contains("'xml'"))
    let extra = try SixtyBinary.run(["validate", "playbooks/deploy.yml", "-e", "novalue"])
    #expect(extra.status == 2)
    #expect(
      extra.stderr.contains(
        "The extra variable 'novalue' is not KEY=VALUE; expected something like -e version=1.2."))
    let missing = try SixtyBinary.run(["plan", "playbooks/deploy.yml"])
    #expect(missing.status == 2)
    #expect(
      missing.stderr.contains("sixty plan needs an inventory: pass -i INVENTORY (or set SIXTY_INVENTORY)."))
    let noFile = try SixtyBinary.run(["validate", "nope.yml"])
    #expect(noFile.status == 2)
    #expect(noFile.stderr == "sixty: error: cannot read 'nope.yml': it does not exist.\n")
  }

  @Test func limitSelectsHosts() throws {
    let result = try SixtyBinary.run([
      "plan", "playbooks/fleet-uptime.yml", "-i", "playbooks/inventory.yml", "--limit", "api", "--format",
      "json",
    ])
    #expect(result.status == 0)
    let object = try #require(
      try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    #expect(object["batches"] as? [[String]] == [["api-1", "api-2"]])
  }
}
