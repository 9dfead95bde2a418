import SixtyCore
import Testing

@Suite struct SupportTests {
  @Test(arguments: [
    ("30s", Int64(30_000)), ("10m", 600_000), ("1h30m", 5_400_000), ("250ms", 250), ("45", 45_000),
    ("2d", 172_800_000),
  ])
  func timeSpansParse(text: String, milliseconds: Int64) {
    #expect(TimeSpan(parsing: text)?.milliseconds == milliseconds)
  }

  @Test(arguments: ["", "10x", "m", "-5", "1h1h", "5 m m"])
  func badTimeSpansAreRejected(text: String) {
    #expect(TimeSpan(parsing: text) == nil)
  }

  @Test func timeSpanDescription() {
    #expect(TimeSpan.seconds(5400).description == "1h30m")
    #expect(TimeSpan(milliseconds: 1500).description == "1s500ms")
  }

  @Test func suggestions() {
    #expect(Suggestion.closest(to: "comand", in: ["command", "shell"]) == "command")
    #expect(Suggestion.closest(to: "zzz", in: ["command", "shell"]) == nil)
  }

  @Test func selectorsParse() throws {
    let s = try HostSelector(parsing: "role=web, env!=prod,!canary")
    #expect(s.alternatives.count == 1)
    #expect(s.alternatives[0].count == 3)
    #expect(s.alternatives[0][1].term == .tag(key: "env", value: "prod", equal: false))
    #expect(s.alternatives[0][2].negated)
    #expect(throws: HostSelector.ParseError.self) { try HostSelector(parsing: "web,,db") }
    #expect(throws: HostSelector.ParseError.self) { try HostSelector(parsing: "$(reboot)") }
    #expect(throws: HostSelector.ParseError.self) { try HostSelector(parsing: "a=b=c") }
  }

  @Test func selectorsMatchTagsAndLetTheCallerSayWhatANameIs() throws {
    let tags = ["role": "web", "env": "prod"]
    #expect(try HostSelector(parsing: "role=web").matches(tags: tags) { _ in false })
    #expect(try HostSelector(parsing: "role=w*,env!=dev").matches(tags: tags) { _ in false })
    #expect(try !HostSelector(parsing: "missing=x").matches(tags: tags) { _ in true })
    #expect(try HostSelector(parsing: "missing!=x").matches(tags: tags) { _ in false })
    #expect(try HostSelector(parsing: "web-1").matches(tags: [:]) { $0 == "web-1" })
    #expect(try !HostSelector(parsing: "!web-1").matches(tags: [:]) { $0 == "web-1" })
    #expect(try HostSelector(union: ["db", "all"]).matches(tags: [:]) { _ in false })
    #expect(HostSelector.tag("role", "web", equal: true, in: tags))
    #expect(!HostSelector.tag("role", "web", equal: false, in: tags))
  }

  @Test func globs() {
    #expect(Glob.matches("web-*", "web-12"))
    #expect(!Glob.matches("web-*", "api-1"))
    #expect(Glob.matches("web-?", "web-1"))
    #expect(Glob.matches("db-[12]", "db-2"))
    #expect(!Glob.matches("db-[12]", "db-3"))
    #expect(Glob.matches("*", ""))
  }

  @Test func jsonWriterEscapes() {
    var w = JSONWriter()
    w.beginObject()
    w.field("a", "x\"y\n\u{1}")
    w.field("n", 3)
    w.key("list")
    w.beginArray()
    w.value(true)
    w.null()
    w.endArray()
    w.endObject()
    #expect(w.string == #"{"a":"x\"y\n\u0001","n":3,"list":[true,null]}"#)
  }

  @Test func jsonWriterWritesAnObjectPerItem() {
    var w = JSONWriter(pretty: true)
    w.beginObject()
    w.field("items", objects: [1, 2]) { w, n in w.field("n", n) }
    w.field("none", objects: [Int]()) { w, n in w.field("n", n) }
    w.endObject()
    #expect(
      w.string == """
        {
          "items": [
            {
              "n": 1
            },
            {
              "n": 2
            }
          ],
          "none": []
        }
        """)
  }

  @Test func diagnosticFormat() {
    let d = Diagnostic.error("boom.", at: SourceLocation(file: "p.yml", line: 3, column: 7))
    #expect(d.description == "p.yml:3:7: error: boom.")
    #expect(DiagnosticsError([d]).exitCode == 2)
    #expect(DiagnosticsError([.error("no.", at: nil, kind: .policy)]).exitCode == 3)
  }
}
