import Foundation
import SixtyCore
import SixtyPlaybook
import Testing

@testable import SixtyRun

/// `-e KEY=VALUE`, `-e @FILE` and `-e '{JSON}'`; `--forks` above the policy; repeated `--limit`.
@Suite struct RunInputsTests {
  func withFile<T>(_ name: String, _ text: String, _ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-e-\(UUID().uuidString)")
      .path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/" + name
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return try body(path)
  }

  func failure(_ entry: String) -> String? {
    do {
      _ = try ExtraVariable.parseAll(entry)
      return nil
    } catch {
      return error.message
    }
  }

  @Test func keyValueStaysAsItWas() throws {
    #expect(try ExtraVariable.parseAll("version=1.2") == [ExtraVariable(name: "version", value: "1.2")])
    #expect(failure("novalue")?.contains("is not KEY=VALUE") == true)
  }

  @Test func jsonObjectsKeepTheirShape() throws {
    let variables = try ExtraVariable.parseAll(
      #"{"version": "1.2", "ports": [80, 443], "db": {"name": "shop"}}"#)
    #expect(variables.map(\.name) == ["version", "ports", "db"])
    #expect(variables[1].value == .list([.string("80"), .string("443")]))
    #expect(variables[2].value == .map(["name": .string("shop")]))
    #expect(try ExtraVariable.parseAll(#"{"a":1}"#) == [ExtraVariable(name: "a", value: "1")])
    #expect(failure(#"{"a": [1, 2}"#)?.hasPrefix("-e:1:") == true)
    #expect(
      failure(#"{"host": 1}"#)
        == "-e:1:2: the variable name 'host' is not valid; expected letters, digits and '_' (not starting with a digit, and not 'host')."
    )
    #expect(failure(#"{"a": 1, "a": 2}"#)?.hasPrefix("-e:1:") == true)
  }

  @Test func filesOfVariables() throws {
    let variables = try withFile("vars.yml", "version: '1.2'\nhosts_per_batch: 5\nlist: [a, b]\n") {
      try ExtraVariable.parseAll("@" + $0)
    }
    #expect(variables.map(\.name) == ["version", "hosts_per_batch", "list"])
    #expect(variables[2].value == .list([.string("a"), .string("b")]))
    let json = try withFile("vars.json", #"{"n": 5}"#) { try ExtraVariable.parseAll("@" + $0) }
    #expect(json == [ExtraVariable(name: "n", value: "5")])
    let (bad, path) = try withFile("bad.yml", "ok: 1\n9lives: x\n") { (failure("@" + $0), $0) }
    #expect(
      bad
        == "\(path):2:1: the variable name '9lives' is not valid; expected letters, digits and '_' (not starting with a digit, and not 'host')."
    )
    let (list, listPath) = try withFile("list.yml", "- a\n- b\n") { (failure("@" + $0), $0) }
    #expect(
      list?.hasPrefix("\(listPath):1:1: the variables file \(listPath) is a list; expected a mapping") == true
    )
    #expect(failure("@/nonexistent/vars.yml") == "cannot read '/nonexistent/vars.yml': it does not exist.")
    #expect(failure("@")?.contains("names no file") == true)
  }

  @Test func laterValuesWinAndTypesReachThePlanner() throws {
    var request = RunRequest(source: .playbook(path: "p.yml"))
    request.extraVars =
      try ExtraVariable.parseAll(#"{"v": "1", "ports": [80]}"#) + ExtraVariable.parseAll("v=2")
    let vars = Runner.inputs(request).options.extraVars
    #expect(vars["v"] == .string("2"))
    #expect(vars["ports"] == .list([.string("80")]))
    // A request with structured values survives the trip to the jobs daemon's child.
    let data = try JSONEncoder().encode(request)
    #expect(try JSONDecoder().decode(RunRequest.self, from: data) == request)
  }

  @Test func forksAboveThePolicyNameBothNumbersAndWhereTheLimitCameFrom() async throws {
    var request = RunRequest(source: .playbook(path: RunnerTests.playbooks + "/fleet-uptime.yml"))
    request.inventory = RunnerTests.playbooks + "/inventory.yml"
    let plan = try #require(await Runner.load(request).plan)
    #expect(Runner.forksNotice(plan, forks: nil) == nil)
    #expect(Runner.forksNotice(plan, forks: 50) == nil)
    #expect(
      Runner.forksNotice(plan, forks: 60)
        == "sixty: warning: --forks 60 asks for more hosts at once than the policy allows: no organisation policy file was given, and the play's policy (or the built-in default) allows 50, so the policy wins and at most 50 hosts run at once."
    )
  }

  @Test func repeatedLimitsAreAUnion() throws {
    #expect(HostLimit(limits: []) == nil)
    #expect(HostLimit(limits: ["web"]) == .selector("web"))
    let union = try #require(HostLimit(limits: ["web-1", "db:!db-2"]))
    #expect(union.text == "web-1 | db:!db-2")
    #expect(HostLimit(recorded: union.text) == union)
    #expect(union.selector?.alternatives.count == 2)
  }
}
