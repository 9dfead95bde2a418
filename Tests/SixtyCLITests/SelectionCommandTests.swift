import Foundation
import Testing

/// The command line's host selection and inputs: -l/--limit (repeatable, a union), Ansible
/// patterns, inline and Ansible inventories, -e @FILE and JSON, -f and --check.
@Suite struct SelectionCommandTests {
  func batches(_ arguments: [String]) throws -> [[String]]? {
    let result = try SixtyBinary.run(
      ["plan", "playbooks/fleet-uptime.yml"] + arguments + ["--format", "json"])
    #expect(result.status == 0, "\(result.stderr)")
    let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    return object?["batches"] as? [[String]]
  }

  @Test func repeatedLimitsAreAUnionAndPatternsWork() throws {
    #expect(
      try batches(["-i", "playbooks/inventory.yml", "-l", "web-1:api-1", "--limit", "stage-1"])
        == [["web-1", "api-1", "stage-1"]])
    #expect(
      try batches(["-i", "playbooks/inventory.yml", "--limit", "web:&role=web:!canary:!web-3"])
        == [["web-2", "web-4"]])
  }

  @Test func anEmptyLimitSaysHowTermsCombine() throws {
    let result = try SixtyBinary.run([
      "plan", "playbooks/fleet-uptime.yml", "-i", "playbooks/inventory.yml", "--limit", "web-1,api-1",
    ])
    #expect(result.status == 2)
    #expect(
      result.stderr.contains(
        "--limit 'web-1,api-1' matched no host of playbooks/inventory.yml; 'web-1,api-1' means web-1 AND api-1; for any of them, write 'web-1:api-1' or pass --limit once for each; expected at least one host."
      ), "\(result.stderr)")
  }

  @Test func inlineAndAnsibleInventories() throws {
    #expect(try batches(["-i", "127.0.0.1,localhost,"]) == [["127.0.0.1", "localhost"]])
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let ini = dir.appendingPathComponent("hosts").path
    try "[web]\nweb[1:3] ansible_user=deploy\n[db]\ndb1\n".write(
      toFile: ini, atomically: true, encoding: .utf8)
    #expect(try batches(["-i", ini, "-l", "web:!web2"]) == [["web1", "web3"]])
    let bad = dir.appendingPathComponent("bad").path
    try "[web]\nweb1 port\n".write(toFile: bad, atomically: true, encoding: .utf8)
    let result = try SixtyBinary.run(["validate", "playbooks/fleet-uptime.yml", "-i", bad])
    #expect(result.status == 2)
    #expect(
      result.stderr.contains(
        "\(bad):2:6: error: 'port' after the host 'web1' is not a variable; expected key=value."))
  }

  @Test func extraVariablesFromFilesAndJSON() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let vars = dir.appendingPathComponent("vars.yml").path
    try "ok: 1\nbad-name: 2\n".write(toFile: vars, atomically: true, encoding: .utf8)
    let file = try SixtyBinary.run(["validate", "playbooks/deploy.yml", "-e", "@" + vars])
    #expect(file.status == 2)
    #expect(file.stderr.contains("\(vars):2:1: the variable name 'bad-name' is not valid"), "\(file.stderr)")
    let json = try SixtyBinary.run(["validate", "playbooks/deploy.yml", "-e", #"{"version": [1"#])
    #expect(json.status == 2)
    #expect(json.stderr.contains("-e:") && json.stderr.contains("expected ',' or ']'"), "\(json.stderr)")
  }

  @Test func forksAbovePolicySaysThePolicyWonOnce() throws {
    let result = try SixtyBinary.run([
      "run", "playbooks/fleet-uptime.yml", "-i", "playbooks/inventory.yml", "--policy",
      "playbooks/policy.yml",
      "-l", "web", "-f", "40", "--check",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let sentence =
      "--forks 40 asks for more hosts at once than the policy allows: the policy in playbooks/policy.yml (with the play's own) allows 25, so the policy wins and at most 25 hosts run at once."
    #expect(result.stderr.components(separatedBy: sentence).count == 2, "\(result.stderr)")
    #expect(result.stdout.contains("Plan for playbooks/fleet-uptime.yml"))
    let within = try SixtyBinary.run([
      "run", "playbooks/fleet-uptime.yml", "-i", "playbooks/inventory.yml", "--policy",
      "playbooks/policy.yml",
      "-l", "web", "-f", "5", "--dry-run",
    ])
    #expect(within.status == 0)
    #expect(!within.stderr.contains("--forks"))
    // sixty exec: --forks is its play's concurrency, so the policy's cap is the same one sentence.
    let exec = try SixtyBinary.run([
      "exec", "web", "-i", "playbooks/inventory.yml", "--policy", "playbooks/policy.yml", "-f", "40",
      "--check",
      "--", "uptime",
    ])
    #expect(exec.status == 0, "\(exec.stderr)")
    #expect(exec.stderr.components(separatedBy: sentence).count == 2, "\(exec.stderr)")
    #expect(!exec.stderr.contains("the play's concurrency"), "\(exec.stderr)")
  }
}
