import Foundation
import SixtyCore

/// The formats `-i` reads, and how one is recognised.
///
/// 1. `-i` names no file and contains a comma: an inline list (`web1,web2,` or `host1,`).
/// 2. The first line that is neither blank nor a comment (`#`, `;`) decides:
///    - `---`, `%YAML`, or `key:` / `key: value` (a YAML mapping key): YAML. A YAML mapping with
///      a top-level `all:`, or whose top-level values are all groups (mappings of only `hosts`,
///      `vars` and `children`), is an Ansible YAML inventory; one with only Sixty's keys
///      (`hosts`, `groups`, `vars`, `defaults`, `source` and the EC2 source's) is Sixty's own.
///    - `[name]` or `[name:vars]`/`[name:children]`, or a host followed by `key=value` words: an
///      Ansible INI inventory.
///    - a single word: a pssh hosts file (`[user@]host[:port]` per line), unless a later line
///      is a section or carries `key=value` words, which makes the file INI.
public enum InventoryFormat: String, Sendable {
  /// YAML: Sixty's own inventory, or Ansible's when `AnsibleYAMLInventory.recognises` it.
  case sixty = "Sixty YAML inventory"
  case ansibleYAML = "Ansible YAML inventory"
  case ansibleINI = "Ansible INI inventory"
  case pssh = "pssh hosts file"
  case inline = "inline host list"

  static let expected =
    "expected Sixty's YAML inventory (top-level 'hosts:'), an Ansible YAML inventory ('all:', or groups with 'hosts:'/'children:'/'vars:'), an Ansible INI inventory ('[group]' sections, host lines with key=value), a pssh hosts file ([user@]host[:port] per line) or a comma-separated list like 'web1,web2,'"

  /// The most bytes an inventory file may have.
  static let maximumBytes = 64 << 20

  /// Loads an inventory of any supported format from `path` (or the inline list `path` spells).
  public static func load(path: String) -> (Inventory?, [Diagnostic]) {
    if !FileManager.default.fileExists(atPath: path) && path.unicodeScalars.contains(",") {
      return finish(HostListInventory.parseInline(path))
    }
    guard let handle = FileHandle(forReadingAtPath: path) else {
      let exists = FileManager.default.fileExists(atPath: path)
      // A bare host name was probably meant as a one-host list, which Ansible writes 'host1,'.
      let hint =
        !exists && !path.unicodeScalars.contains("/") && SafeText.isHostAddress(path)
        ? " (for a list of hosts, end it with a comma: -i '\(path),')" : ""
      return (
        nil,
        [
          .error(
            "cannot read '\(path)': \(exists ? "it is not readable" : "it does not exist")\(hint).", at: nil)
        ]
      )
    }
    defer { try? handle.close() }
    let data: Data
    do {
      data = try handle.read(upToCount: maximumBytes + 1) ?? Data()
    } catch {
      return (nil, [.error("cannot read '\(path)': \(error.localizedDescription)", at: nil)])
    }
    let start = SourceLocation(file: path, line: 1, column: 1)
    if data.count > maximumBytes {
      return (
        nil,
        [
          .error(
            "the inventory is larger than \(maximumBytes >> 20) MiB; expected a smaller file.", at: start)
        ]
      )
    }
    guard let text = String(validating: data, as: UTF8.self), !text.utf8.contains(0) else {
      // The YAML loader names the first bad byte (invalid UTF-8 or NUL).
      let diagnostics = YAMLLoader.parse(data: data, file: path).1.filter { $0.severity == .error }
      return (
        nil, diagnostics.isEmpty ? [.error("the inventory is not UTF-8 text.", at: start)] : diagnostics
      )
    }
    return parse(text: text, file: path)
  }

  /// Reads inventory text that claims to come from `file`, in whichever format it is written.
  public static func parse(text: String, file path: String) -> (Inventory?, [Diagnostic]) {
    let start = SourceLocation(file: path, line: 1, column: 1)
    switch detect(text) {
    case .pssh:
      return finish(HostListInventory.parsePssh(text, file: path))
    case .ansibleINI:
      return finish(AnsibleINIInventory.parse(text, file: path))
    case nil:
      return (nil, [.error("the inventory is empty; \(expected).", at: start)])
    default:
      let loaded = YAMLLoader.parse(text: text, file: path)
      guard let root = loaded.0 else {
        return (
          nil, loaded.1.isEmpty ? [.error("the inventory is empty; \(expected).", at: start)] : loaded.1
        )
      }
      if AnsibleYAMLInventory.recognises(root) {
        let (inventory, diagnostics) = finish(AnsibleYAMLInventory.parse(root, file: path))
        return (inventory, loaded.1 + diagnostics)
      }
      guard root.pairs != nil else {
        return (
          nil,
          loaded.1 + [
            .error(
              "the inventory is YAML but \(root.kindDescription), not a mapping; \(expected).",
              at: root.location)
          ]
        )
      }
      return NodeReader.read(
        loaded,
        empty: .error("the inventory is empty; expected a mapping with 'hosts'.", at: start)
      ) { root, reader in
        // With at least one of Sixty's keys, the native reader reports the others (with a
        // did-you-mean); with none, the file matches no format at all.
        let native = Set(["vars", "defaults", "hosts", "groups", "source"] + EC2InventorySource.keys)
        if root.pairs?.contains(where: { native.contains($0.key) }) == false, let pair = root.pairs?.first {
          reader.error(
            "the inventory's top-level key \(SafeText.quoted(pair.key)) is neither one of Sixty's (hosts, groups, vars, defaults, source) nor an Ansible group (a mapping of hosts, vars and children); \(expected).",
            at: pair.keyLocation)
          return nil
        }
        return InventoryParser.parse(root, file: path, reader: &reader)
      }
    }
  }

  static func finish(_ builder: AnsibleInventoryBuilder) -> (Inventory?, [Diagnostic]) {
    var builder = builder
    let inventory = builder.build()
    return (builder.diagnostics.hasErrors ? nil : inventory, builder.diagnostics.all)
  }

  /// The format of a file's text, by its first significant line (see the type's comment); nil
  /// for a file with nothing but blank lines and comments.
  static func detect(_ text: String) -> InventoryFormat? {
    var first: String?
    for rawLine in lines(text) {
      let line = rawLine.trimmingWhitespace()
      guard let c = line.unicodeScalars.first, c != "#", c != ";", c != "\r" else { continue }
      if first == nil {
        first = line
        if line.hasPrefix("---") || line.hasPrefix("%YAML") || isYAMLKey(line) { return .sixty }
        if AnsibleINIInventory.section(line) != nil || hasAssignments(line) { return .ansibleINI }
        if line.hasPrefix("- ") || line.hasPrefix("{") { return .sixty }
      }
      // A section, key=value words or a host range make a list of hosts an INI inventory.
      if AnsibleINIInventory.section(line) != nil || hasAssignments(line) || hasRange(line) {
        return .ansibleINI
      }
    }
    return first == nil ? nil : .pssh
  }

  /// The lines of `text`, split at "\n" on Unicode scalars (a "\r\n" is one `Character`, so
  /// splitting on characters would miss it), without a trailing "\r".
  static func lines(_ text: String) -> [String] {
    text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line in
      String(String.UnicodeScalarView(line.last == "\r" ? line.dropLast() : line))
    }
  }

  /// `key:` or `key: value`, the key having no spaces, '=' or brackets.
  static func isYAMLKey(_ line: String) -> Bool {
    let scalars = Array(line.unicodeScalars)
    guard let colon = scalars.firstIndex(of: ":"), colon > 0 else { return false }
    let key = scalars[..<colon]
    let quoted = key.first == "\"" || key.first == "'"
    guard quoted || !key.contains(where: { $0 == " " || $0 == "\t" || $0 == "=" || $0 == "[" || $0 == "]" })
    else {
      return false
    }
    return colon + 1 == scalars.count || scalars[colon + 1] == " " || scalars[colon + 1] == "\t"
  }

  /// A host pattern with a range (`web[01:20]`), which pssh files do not have.
  static func hasRange(_ line: String) -> Bool {
    guard line.unicodeScalars.first != "[", let open = line.unicodeScalars.firstIndex(of: "[") else {
      return false
    }
    let rest = line.unicodeScalars[line.unicodeScalars.index(after: open)...]
    guard let close = rest.firstIndex(of: "]") else { return false }
    // begin:end or begin:end:step, not an IPv6 address like [::1].
    let bounds = rest[..<close].split(separator: ":", omittingEmptySubsequences: false)
    return (bounds.count == 2 || bounds.count == 3) && !bounds[1].isEmpty
      && bounds.allSatisfy {
        $0.allSatisfy { SafeText.isAlphanumeric(UInt8(truncatingIfNeeded: $0.value)) && $0.isASCII }
      }
  }

  /// A host line followed by at least one `key=value` word.
  static func hasAssignments(_ line: String) -> Bool {
    guard let words = try? ShellWords.split(line), words.count > 1 else { return false }
    return words.dropFirst().allSatisfy { word in
      guard let equals = word.0.unicodeScalars.firstIndex(of: "=") else { return false }
      return equals != word.0.unicodeScalars.startIndex
    }
  }
}
