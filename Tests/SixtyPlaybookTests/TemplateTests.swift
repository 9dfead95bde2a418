import SixtyCore
import SixtyPlaybook
import Testing

@Suite struct TemplateTests {
  func node(_ text: String) -> YAMLNode {
    YAMLLoader.parse(text: "v: \(text)\n", file: "t.yml").0!["v"]!
  }

  func template(_ text: String) -> (Template?, [String]) {
    var reader = NodeReader()
    let t = Template(node: node(text), reader: &reader)
    return (t, reader.diagnostics.all.map(\.description))
  }

  let host = InventoryHost(name: "web-1", address: "10.0.0.1", user: "ops", tags: ["role": "web"])

  func scope(_ vars: [String: Value] = [:]) -> VariableScope {
    VariableScope(layers: [vars], host: host)
  }

  @Test func rendersVariablesAndFacts() throws {
    let t = try #require(
      template("'restart {{ service }} on {{ host.name }} ({{ host.tags.role | upper }})'").0)
    #expect(try t.render(in: scope(["service": .string("nginx")])) == "restart nginx on web-1 (WEB)")
  }

  @Test func filters() throws {
    let t = try #require(template("\"{{ path | default('/srv') | quote }} {{ list | join(',') }}\"").0)
    #expect(try t.render(in: scope(["list": .list([.string("a"), .string("b")])])) == "/srv a,b")
    let q = try #require(template("\"{{ msg | quote }}\"").0)
    #expect(try q.render(in: scope(["msg": .string("it's; rm -rf /")])) == #"'it'\''s; rm -rf /'"#)
  }

  @Test func unknownVariableThrowsWithItsLocation() throws {
    let t = try #require(template("echo {{ missing }}").0)
    #expect(throws: Template.Unresolved.self) { try t.render(in: scope()) }
    do {
      _ = try t.render(in: scope())
    } catch {
      #expect(error.expression.location.description == "t.yml:1:9")
      #expect(error.expression.path == ["missing"])
    }
  }

  @Test func syntaxErrors() {
    #expect(
      template("echo {{ x").1 == [
        #"t.yml:1:9: error: '{{' is never closed in "echo {{ x"; expected '{{ name }}'."#
      ])
    #expect(
      template("'a {{ }}'").1 == [
        "t.yml:1:7: error: the placeholder '{{ }}' is empty; expected a variable name like '{{ version }}'."
      ])
    #expect(
      template("'{{ x | shout }}'").1 == [
        "t.yml:1:5: error: unknown filter 'shout'; expected one of: default, quote, upper, lower, join."
      ])
    #expect(
      template("'{{ x | uper }}'").1 == [
        "t.yml:1:5: error: unknown filter 'uper' (did you mean 'upper'?); expected one of: default, quote, upper, lower, join."
      ])
    #expect(
      template("'{{ $(id) }}'").1 == [
        "t.yml:1:5: error: '$(id)' is not a variable name; expected names made of letters, digits and '_' joined by dots, like 'host.tags.role'."
      ])
  }

  @Test func shellQuote() {
    #expect(ShellQuote.quote("simple-1.2") == "simple-1.2")
    #expect(ShellQuote.quote("") == "''")
    #expect(ShellQuote.quote("a b") == "'a b'")
    #expect(ShellQuote.quote("$(x)") == "'$(x)'")
  }
}

@Suite struct ConditionTests {
  func condition(_ text: String) -> Result<Condition, ConditionError> {
    let node = YAMLLoader.parse(text: "when: \"\(text)\"\n", file: "c.yml").0!["when"]!
    return Condition.parse(text, at: node)
  }

  let host = InventoryHost(name: "web-1", tags: ["role": "web", "env": "prod"])

  func evaluate(_ text: String, _ vars: [String: Value] = [:]) throws -> Bool {
    let c = try condition(text).get()
    return try c.evaluate(in: VariableScope(layers: [vars], host: host))
  }

  @Test func comparisons() throws {
    #expect(try evaluate("host.tags.role == 'web'"))
    #expect(try !evaluate("host.tags.role != 'web'"))
    #expect(try evaluate("host.tags.env in ['prod', 'staging']"))
    #expect(try evaluate("host.tags.env not in ['dev']"))
    #expect(try evaluate("flag", ["flag": .string("yes")]))
    #expect(try !evaluate("flag", ["flag": .string("false")]))
    #expect(
      try evaluate(
        "not flag and (a == '1' or b == '2')", ["flag": .string("no"), "a": .string("0"), "b": .string("2")]))
    #expect(try evaluate("version is not defined"))
    #expect(try evaluate("host.tags.role is defined"))
    #expect(try evaluate("version is defined and version == '2'", ["version": .string("2")]))
  }

  @Test func undefinedVariablesThrow() throws {
    #expect(throws: Template.Unresolved.self) { try evaluate("nope == 'x'") }
  }

  @Test func syntaxErrorsArePositioned() {
    guard case .failure(let e1) = condition("a = 'x'") else { Issue.record("expected a failure"); return }
    #expect(e1.message == "unexpected '=' in the condition; expected '==' or '!='.")
    #expect(e1.location.description == "c.yml:1:10")
    guard case .failure(let e2) = condition("(a == 'x'") else { Issue.record("expected a failure"); return }
    #expect(e2.message == "unclosed '(' opened at column 8; expected ')' before the end of the condition.")
    #expect(e2.location.description == "c.yml:1:17")
    guard case .failure(let e3) = condition("a == 'x' b") else { Issue.record("expected a failure"); return }
    #expect(e3.message == "unexpected 'b' in the condition; expected 'and', 'or' or the end.")
    #expect(e3.location.description == "c.yml:1:17")
  }
}
