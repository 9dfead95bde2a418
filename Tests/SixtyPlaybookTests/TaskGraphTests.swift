import SixtyCore
import SixtyPlaybook
import Testing

@Suite struct TaskGraphTests {
  func parse(_ yaml: String) -> (Playbook?, [String]) {
    let (node, diagnostics) = YAMLLoader.parse(text: yaml, file: "p.yml")
    var reader = NodeReader()
    reader.diagnostics.append(contentsOf: diagnostics)
    guard let node else { return (nil, reader.diagnostics.all.map(\.description)) }
    let playbook = PlaybookParser.parse(node, path: "p.yml", reader: &reader)
    return (playbook, reader.diagnostics.all.map(\.description))
  }

  @Test func stableTopologicalOrder() throws {
    let (playbook, diagnostics) = parse(
      """
      hosts: all
      tasks:
        - {name: d, shell: x, needs: [b, c]}
        - {name: c, shell: x, needs: [a]}
        - {name: b, shell: x}
        - {name: a, shell: x}
        - {name: e, shell: x}
      """)
    #expect(diagnostics.isEmpty)
    let play = try #require(playbook?.plays.first)
    // Ready at start: b (index 2), a (3), e (4); file order breaks ties.
    #expect(play.graph.order.map { play.tasks[$0].name } == ["b", "a", "c", "d", "e"])
  }

  @Test func cycleIsNamed() {
    let (_, diagnostics) = parse(
      """
      hosts: all
      tasks:
        - {name: a, shell: x, needs: [c]}
        - {name: b, shell: x, needs: [a]}
        - {name: c, shell: x, needs: [b]}
      """)
    #expect(
      diagnostics == [
        "p.yml:3:33: error: the tasks form a dependency cycle: 'a' -> 'c' -> 'b' -> 'a'; expected 'needs' to form no loop."
      ])
  }

  @Test func unknownDependencySuggests() {
    let (_, diagnostics) = parse(
      """
      hosts: all
      tasks:
        - {name: upgrade, shell: x}
        - {name: restart, shell: x, needs: [upgrdae]}
      """)
    #expect(
      diagnostics == [
        "p.yml:4:39: error: the task 'restart' needs 'upgrdae', which is not a task of this play (did you mean 'upgrade'?)."
      ])
  }

  @Test func selfDependency() {
    let (_, diagnostics) = parse("hosts: all\ntasks:\n  - {name: a, shell: x, needs: a}\n")
    #expect(
      diagnostics == ["p.yml:3:32: error: the task 'a' needs itself; expected the names of other tasks."])
  }
}
