import SixtyCore
import Testing

@Suite struct NodeReaderTests {
  func node(_ yaml: String) -> YAMLNode {
    YAMLLoader.parse(text: yaml, file: "f.yml").0!["v"]!
  }

  @Test func readKeepsTheLoadersDiagnosticsAndDropsTheValueOnErrors() {
    let parsed = NodeReader.read(
      YAMLLoader.parse(text: "v: 3\n", file: "f.yml"), empty: .error("empty.", at: nil)
    ) {
      root, reader in reader.int(root["v"]!, "'v'")
    }
    #expect(parsed.0 == 3)
    #expect(parsed.1.isEmpty)
    let refused = NodeReader.read(
      YAMLLoader.parse(text: "v: x\n", file: "f.yml"), empty: .error("empty.", at: nil)
    ) {
      root, reader in reader.int(root["v"]!, "'v'")
    }
    #expect(refused.0 == nil)
    #expect(refused.1.map(\.message) == ["expected a whole number for 'v', found 'x'."])
  }

  @Test func readSaysWhyAnEmptyDocumentHasNoValue() {
    let empty = NodeReader.read(YAMLLoader.parse(text: "", file: "f.yml"), empty: .error("empty.", at: nil)) {
      _, _ in 1
    }
    #expect(empty.0 == nil)
    #expect(empty.1.map(\.message) == ["empty."])
    let unreadable = NodeReader.read(
      YAMLLoader.load(path: "/nonexistent/f.yml"), empty: .error("empty.", at: nil)
    ) {
      _, _ in 1
    }
    #expect(unreadable.0 == nil)
    #expect(unreadable.1.map(\.message) == ["cannot read '/nonexistent/f.yml': it does not exist."])
  }

  @Test func convertedStringsReportWhatTheyRejectAtTheValue() {
    var reader = NodeReader()
    #expect(reader.string(node("v: 42\n"), "'v'", as: { Int($0) }) { "'\($0)' is no number." } == 42)
    #expect(reader.string(node("v: x\n"), "'v'", as: { Int($0) }) { "'\($0)' is no number." } == nil)
    #expect(
      reader.string(node("v: ab\n"), "'v'", where: { $0.count == 2 }) { "'\($0)' is too long." } == "ab")
    #expect(
      reader.string(node("v: abc\n"), "'v'", where: { $0.count == 2 }) { "'\($0)' is too long." } == nil)
    #expect(reader.string(node("v: [1]\n"), "'v'", where: { _ in true }) { _ in "never" } == nil)
    #expect(
      reader.diagnostics.all.map(\.description) == [
        "f.yml:1:4: error: 'x' is no number.", "f.yml:1:4: error: 'abc' is too long.",
        "f.yml:1:4: error: expected a string for 'v', found a list.",
      ])
  }

  @Test func namesAreRecordedAndARepeatIsReported() {
    var reader = NodeReader()
    var seen: [String: SixtyCore.SourceLocation] = [:]
    let first = SixtyCore.SourceLocation(file: "f.yml", line: 2, column: 3)
    let second = SixtyCore.SourceLocation(file: "f.yml", line: 5, column: 3)
    #expect(reader.isFirst("a", at: first, in: &seen) { "again, first at line \($0.line)." })
    #expect(!reader.isFirst("a", at: second, in: &seen) { "again, first at line \($0.line)." })
    #expect(seen == ["a": first])
    #expect(reader.diagnostics.all.map(\.description) == ["f.yml:5:3: error: again, first at line 2."])
  }

  @Test func listsAreSequencesOnly() {
    var reader = NodeReader()
    #expect(reader.list(node("v: [a, b]\n"), of: "names", for: "'v'")?.count == 2)
    #expect(reader.list(node("v: a\n"), of: "names", for: "'v'") == nil)
    #expect(reader.diagnostics.all.map(\.message) == ["expected a list of names for 'v', found a scalar."])
  }
}
