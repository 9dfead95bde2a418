import SixtyCore
import Testing

/// Ansible's pattern operators (`a:b`, `a:&b`, `a:!b`) next to the comma AND.
@Suite struct HostSelectorPatternTests {
  /// A small fleet: each host's groups and tags.
  struct Host {
    var name: String
    var groups: [String]
    var tags: [String: String] = [:]
  }

  let fleet = [
    Host(
      name: "web-1", groups: ["web", "prod"], tags: ["role": "web", "aws:autoscaling:groupName": "asg-a"]),
    Host(name: "web-2", groups: ["web", "staging"], tags: ["role": "web"]),
    Host(name: "db-1", groups: ["db", "prod"], tags: ["role": "db", "arn": "arn:aws:ec2:x"]),
    Host(name: "canary", groups: ["web", "prod"], tags: ["role": "web"]),
    Host(name: "fe80::1", groups: [], tags: [:]),
  ]

  func pick(_ text: String) throws -> [String] {
    let selector = try HostSelector(parsing: text)
    return fleet.filter { host in
      selector.matches(tags: host.tags) { host.groups.contains($0) || Glob.matches($0, host.name) }
    }.map(\.name)
  }

  @Test(arguments: [
    ("web:db", ["web-1", "web-2", "db-1", "canary"]),
    ("web-1:db-1", ["web-1", "db-1"]),
    ("web:&prod", ["web-1", "canary"]),
    ("web:!canary", ["web-1", "web-2"]),
    ("web:db:&prod:!canary", ["web-1", "db-1"]),
    // Ansible's order: unions first, then intersections, then exclusions, wherever written.
    ("!canary:web", ["web-1", "web-2"]),
    ("&prod:web", ["web-1", "canary"]),
    ("!web", ["db-1", "fe80::1"]),
    ("web:!role=web,web-2", ["web-1", "canary"]),
    // A ':' inside a tag test belongs to it: AWS keys and ARN values.
    ("aws:autoscaling:groupName=asg-a", ["web-1"]),
    ("arn=arn:aws:*", ["db-1"]),
    ("web:&aws:autoscaling:groupName=asg-a", ["web-1"]),
    // Another tag test after a ':' in a value starts a new part.
    ("role=db:role=web", ["web-1", "web-2", "db-1", "canary"]),
    ("role=web:arn=arn:aws:*", ["web-1", "web-2", "db-1", "canary"]),
    ("role=web:web-2", []),
    // IPv6 addresses, bare or in brackets.
    ("fe80::1", ["fe80::1"]),
    ("[fe80::1]:db-1", ["db-1", "fe80::1"]),
    // Glob classes keep their ':'.
    ("web-[1:]", ["web-1"]),
    // The comma keeps its meaning: AND.
    ("web,prod", ["web-1", "canary"]),
    ("!web,role=db", ["db-1"]),
    ("web,prod:db", ["web-1", "db-1", "canary"]),
  ])
  func patternsPick(text: String, expected: [String]) throws {
    #expect(try pick(text) == expected)
  }

  @Test func textAndDescriptionKeepWhatWasWritten() throws {
    let selector = try HostSelector(parsing: "web:&prod:!canary")
    #expect(selector.text == "web:&prod:!canary")
    #expect(selector.description == "web:&prod:!canary")
    #expect(selector.alternatives.count == 1)
    #expect(selector.alternatives[0].map(\.text) == ["web", "prod", "canary"])
    #expect(selector.alternatives[0].map(\.negated) == [false, false, true])
    #expect(try HostSelector(union: ["web-1", "db:!db-1"]).text == "web-1 | db:!db-1")
  }

  @Test func excludingACommaGroupSplitsIntoAlternatives() throws {
    // web minus (prod AND role=web): the web hosts outside prod, or not tagged role=web.
    let selector = try HostSelector(parsing: "web:!prod,role=web")
    #expect(selector.alternatives.count == 2)
    #expect(try pick("web:!prod,role=web") == ["web-2"])
  }

  @Test func errorsPointAtTheBadPart() throws {
    func failure(_ text: String) -> HostSelector.ParseError? {
      do {
        _ = try HostSelector(parsing: text)
        return nil
      } catch {
        return error
      }
    }
    #expect(failure("web:")?.offset == 4)
    #expect(failure("web:")?.message.contains("empty part") == true)
    #expect(failure("web::&db") != nil)
    #expect(failure("web:!") != nil)
    #expect(failure("web:&$(x)")?.offset == 5)
    #expect(failure("web:&$(x)")?.message.contains("'$(x)'") == true)
    #expect(failure("db, web,,x")?.offset == 8)
    // Offsets count characters: "नि" is two Unicode scalars but one character, so "$" is at 3.
    #expect(failure("\u{928}\u{93F}:&$")?.offset == 3)
    #expect(failure("role=web=db")?.message.contains("more than one '='") == true)
  }

  @Test func hostileSelectorsStayBounded() throws {
    // 13 excluded comma groups of 2 terms would be 8192 alternatives.
    let text = "all" + String(repeating: ":!a,b", count: 13)
    #expect(throws: HostSelector.ParseError.self) { try HostSelector(parsing: text) }
    let long = (0..<2000).map { "h\($0)" }.joined(separator: ":")
    #expect(try HostSelector(parsing: long).alternatives.count == 2000)
    // 2000 unions each carrying 2000 intersected terms would be 4 million clauses.
    let wide = long + (0..<2000).map { ":&g\($0)" }.joined()
    #expect(throws: HostSelector.ParseError.self) { try HostSelector(parsing: wide) }
  }

  @Test func combinationHintsExplainTheAnd() throws {
    let selector = try HostSelector(parsing: "web-1,db-1")
    #expect(
      selector.combinationHint(repeating: "pass --limit once for each")
        == "'web-1,db-1' means web-1 AND db-1; for any of them, write 'web-1:db-1' or pass --limit once for each"
    )
    #expect(try HostSelector(parsing: "web-1:db-1").combinationHint(repeating: "x") == nil)
    #expect(
      try HostSelector(parsing: "role=web,env=prod").combinationHint(repeating: "pass --limit once for each")
        == "'role=web,env=prod' means role=web AND env=prod; for any of them, write 'role=web:env=prod' or pass --limit once for each"
    )
    #expect(
      try HostSelector(parsing: "web-1,env=prod").combinationHint(repeating: "pass --limit once for each")
        == "'web-1,env=prod' means web-1 AND env=prod; for any of them, pass --limit once for each")
  }
}
