import Foundation
import SixtyCore
import Testing

@Suite struct YAMLLoaderTests {
  func messages(_ text: String) -> [String] {
    YAMLLoader.parse(text: text, file: "f.yml").1.map(\.description)
  }

  @Test func locationsAreOneBased() throws {
    let (node, diagnostics) = YAMLLoader.parse(text: "a: 1\nb:\n  c: hello\n", file: "f.yml")
    #expect(diagnostics.isEmpty)
    let root = try #require(node)
    #expect(root["a"]?.location == SourceLocation(file: "f.yml", line: 1, column: 4))
    let b = try #require(root["b"])
    #expect(b["c"]?.location.description == "f.yml:3:6")
    #expect(root.pairs?.map(\.key) == ["a", "b"])
    #expect(root.pairs?[1].keyLocation.description == "f.yml:2:1")
  }

  @Test func syntaxErrorHasPosition() {
    #expect(
      messages("a: [1, 2\nb: 3\n") == ["f.yml:2:2: error: invalid YAML: did not find expected ',' or ']'."])
  }

  @Test func duplicateKeyPointsAtTheRepeat() {
    #expect(
      messages("name: x\ntasks: []\nname: y\n") == [
        "f.yml:3:1: error: duplicate key 'name' in this mapping (first given at line 1, column 1); expected each key once."
      ])
    #expect(
      messages("tasks:\n  - name: a\n    shell: x\n    shell: y\n") == [
        "f.yml:4:5: error: duplicate key 'shell' in this mapping (first given at line 3, column 5); expected each key once."
      ])
  }

  @Test func tabsAreExplained() {
    let result = messages("a:\n\tb: 1\n")
    #expect(result == ["f.yml:2:1: error: a tab character is used for indentation; YAML requires spaces."])
  }

  @Test func invalidUTF8IsReported() {
    var data = Data("a: ok\nb: ".utf8)
    data.append(contentsOf: [0xC3, 0x28])
    let (_, diagnostics) = YAMLLoader.parse(data: data, file: "f.yml")
    #expect(
      diagnostics.map(\.description) == [
        "f.yml:2:4: error: the file is not valid UTF-8 (first bad byte here); expected UTF-8 text."
      ])
  }

  @Test func billionLaughsIsBounded() {
    var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in 1...9 {
      text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
    }
    let start = Date()
    let (node, diagnostics) = YAMLLoader.parse(text: text, file: "bomb.yml", limits: .init(maxNodes: 100_000))
    #expect(node == nil)
    #expect(diagnostics.first?.message.contains("expands to more than 100000 nodes") == true)
    #expect(Date().timeIntervalSince(start) < 10)
  }

  @Test func deepNestingIsBounded() {
    let text = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
    let (_, diagnostics) = YAMLLoader.parse(text: text, file: "deep.yml")
    #expect(diagnostics.first?.message.contains("nests deeper than 64 levels") == true)
  }

  @Test func mergeKeysExpandWithExplicitKeysWinning() throws {
    let (node, _) = YAMLLoader.parse(text: "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n", file: "f.yml")
    let c = try #require(node?["c"])
    #expect(c["x"]?.scalar == "1")
    #expect(c["y"]?.scalar == "3")
  }

  @Test func oversizeFileIsRejected() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-yaml-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("big.yml").path
    try String(repeating: "# padding\n", count: 2000).write(toFile: path, atomically: true, encoding: .utf8)
    let (_, diagnostics) = YAMLLoader.load(path: path, displayPath: "big.yml", limits: .init(maxBytes: 1024))
    #expect(
      diagnostics.map(\.description) == [
        "big.yml:1:1: error: the file is larger than 1024 bytes; expected a playbook, inventory or policy of reasonable size."
      ])
  }

  @Test func missingFileIsASentence() {
    let (_, diagnostics) = YAMLLoader.load(path: "/nonexistent/p.yml")
    #expect(
      diagnostics.map(\.description) == ["sixty: error: cannot read '/nonexistent/p.yml': it does not exist."]
    )
  }

  @Test func blockScalarOffsetsMapToColumns() throws {
    let (node, _) = YAMLLoader.parse(text: "s: |\n    echo one\n    echo {{ x }}\n", file: "f.yml")
    let s = try #require(node?["s"])
    // "echo one\necho {{ x }}": offset 14 is the '{' on the second content line.
    #expect(s.location(ofCharacter: 14).description == "f.yml:3:10")
  }
}
