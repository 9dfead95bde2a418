import Foundation
import Testing

/// `sixty exec`'s command forms, its -e and --limit, the ssh flags' checks, and deny rules that
/// match commands rather than text, all decided before anything is pushed.
@Suite struct ExecAndDenyCommandTests {
  let dir: String

  init() throws {
    dir =
      FileManager.default.temporaryDirectory.appendingPathComponent("sixty-deny-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  }

  func write(_ text: String, _ name: String) throws -> String {
    try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
    return dir + "/" + name
  }

  @Test func anArgumentListThatIsRmFrSlashIsRefusedByValidateAndRun() throws {
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let playbook = try write(
      """
      name: wipe
      hosts: all
      tasks:
        - name: wipe
          command: [rm, -fr, /]
      """, "wipe.yml")
    let policy = try write("commands:\n  deny:\n    - \"rm -rf /\"\n", "policy.yml")
    for command in ["validate", "run"] {
      let result = try SixtyBinary.run(
        [command, playbook, "-i", "playbooks/inventory.yml", "--policy", policy]
          + (command == "run" ? ["--endpoint", "http://127.0.0.1:9", "--no-history"] : []))
      #expect(result.status == 3, "\(command): \(result.stdout)\(result.stderr)")
      #expect(
        (result.stdout + result.stderr).contains("the command matches the denied pattern 'rm -rf /' at"),
        "\(command): \(result.stdout)\(result.stderr)")
    }
    // The organisation policy of the examples refuses it too; a harmless rm is not refused.
    let harmless = try write(
      "name: tidy\nhosts: all\ntasks:\n  - name: tidy\n    shell: rm  -rf /tmp/x\n", "tidy.yml")
    let ok = try SixtyBinary.run(
      [
        "validate", harmless, "-i", "playbooks/inventory.yml", "--policy", "playbooks/policy.yml",
        "--approve",
      ])
    #expect(ok.status == 0, "\(ok.stderr)")
    let refused = try SixtyBinary.run(
      [
        "validate", playbook, "-i", "playbooks/inventory.yml", "--policy", "playbooks/policy.yml",
        "--approve",
      ])
    #expect(refused.status == 3, "\(refused.stderr)")
  }

  @Test func shellTextThatCannotBeParsedIsRefusedSayingWhy() throws {
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let policy = try write("commands:\n  deny:\n    - \"rm -rf /\"\n", "policy.yml")
    let result = try SixtyBinary.run(
      [
        "exec", "all", "-i", "playbooks/inventory.yml", "--policy", policy, "--dry-run", "--approve", "--",
        "echo 'unbalanced",
      ])
    #expect(result.status == 3, "\(result.stdout)\(result.stderr)")
    #expect(
      (result.stdout + result.stderr).contains(
        "the shell text cannot be checked against the deny rules: the single quote at character 6 is never closed"
      ),
      "\(result.stdout)\(result.stderr)")
  }

  @Test func aDenyRuleThatIsNotACommandLineIsAnError() throws {
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let policy = try write("commands:\n  deny:\n    - \"rm 'x\"\n", "policy.yml")
    let result = try SixtyBinary.run(
      ["validate", "playbooks/demo.yml", "-i", "playbooks/inventory.yml", "--policy", policy])
    #expect(result.status == 2, "\(result.stderr)")
    #expect(
      result.stderr.contains("policy.yml:3:7: error: the deny rule 'rm \\'x' is not a command line"),
      "\(result.stderr)")
  }

  @Test func oneArgumentIsAShellLineAndSeveralAnArgumentList() throws {
    let one = try SixtyBinary.run(
      [
        "exec", "web-1", "-i", "playbooks/inventory.yml", "--dry-run", "--endpoint", "http://127.0.0.1:9",
        "--",
        "uptime; df -h / | tail -1",
      ])
    #expect(one.status == 0, "\(one.stderr)")
    #expect(one.stdout.contains("uptime; df -h / | tail -1"), "\(one.stdout)")
    #expect(!one.stdout.contains("'uptime; df"), "\(one.stdout)")
    #expect(!(one.stdout + one.stderr).contains("sixty-task"), "\(one.stdout)")
    #expect(!(one.stdout + one.stderr).contains("/tmp/"), "\(one.stdout)")
    let several = try SixtyBinary.run(
      [
        "exec", "web-1", "-i", "playbooks/inventory.yml", "--dry-run", "--endpoint", "http://127.0.0.1:9",
        "--",
        "echo", "a b", "{{ host.name }}",
      ])
    #expect(several.status == 0, "\(several.stderr)")
    #expect(several.stdout.contains("echo 'a b' web-1"), "\(several.stdout)")
  }

  @Test func execTakesExtraVariablesAndALimit() throws {
    let result = try SixtyBinary.run(
      [
        "exec", "all", "-i", "playbooks/inventory.yml", "--limit", "web-2", "-e", "word=hello", "--dry-run",
        "--endpoint", "http://127.0.0.1:9", "--", "echo", "{{ word }}", "{{ host.name }}",
      ])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains("echo hello web-2"), "\(result.stdout)")
    #expect(!result.stdout.contains("web-1"), "\(result.stdout)")
  }

  @Test func badSSHFlagsExitTwo() throws {
    let cases: [([String], String)] = [
      (["-o", "ControlPath=/tmp/x"], "The ssh option -o 'ControlPath=/tmp/x' cannot be used"),
      (["-o", "NoValue"], "expected Key=Value"),
      (["-J", "bastion;touch /tmp/x"], "The jump host -J 'bastion;touch /tmp/x' is not valid"),
      (["-u", "bad user"], "The user -u 'bad user' is not valid"),
    ]
    for (flags, fragment) in cases {
      let result = try SixtyBinary.run(
        ["exec", "all", "-i", "playbooks/inventory.yml", "--dry-run"] + flags + ["--", "true"])
      #expect(result.status == 2, "\(flags): \(result.stderr)")
      #expect(result.stderr.contains(fragment), "\(flags): \(result.stderr)")
    }
  }

  @Test func dashUIsTheUserOfEveryHost() throws {
    let plan = try SixtyBinary.run(
      ["exec", "all", "-i", "playbooks/inventory.yml", "--dry-run", "-u", "deployer", "--", "whoami"])
    #expect(plan.status == 0, "\(plan.stderr)")
    #expect(plan.stdout.contains("user deployer"), "\(plan.stdout)")
    #expect(!plan.stdout.contains("user ops") && !plan.stdout.contains("user postgres"), "\(plan.stdout)")
  }
}
