import SixtyCore

/// Host lists without groups: a pssh hosts file (`[user@]host[:port]` per line, `#` comments,
/// blank lines, IPv6 addresses in brackets) and an inline list (`-i 'web1,web2,'`). Every host
/// is in the group `ungrouped`.
enum HostListInventory {
  /// One line of a pssh hosts file, or one entry of an inline list.
  static func entry(
    _ text: String, location: SourceLocation, into builder: inout AnsibleInventoryBuilder,
    seen: inout [String: SourceLocation]
  ) {
    var rest = Substring(text)
    var user: String?
    if let at = rest.unicodeScalars.lastIndex(of: "@") {
      user = String(rest.unicodeScalars[..<at])
      rest = Substring(rest.unicodeScalars[rest.unicodeScalars.index(after: at)...])
      guard let user, SafeText.isUserName(user) else {
        builder.diagnostics.error(
          "\(SafeText.quoted(user ?? "")) in \(SafeText.quoted(text)) is not a valid user name; expected up to 32 ASCII letters, digits, '.', '_', '-' or '@' before the '@', not starting with '-'.",
          at: location)
        return
      }
    }
    let address: String
    let port: Int?
    do {
      (address, port) = try AnsibleHostPattern.splitPort(String(rest))
    } catch {
      builder.diagnostics.error(error.message, at: location)
      return
    }
    guard SafeText.isHostAddress(address), !address.isEmpty else {
      builder.diagnostics.error(
        "\(SafeText.quoted(String(rest))) is not a host name or IP address; expected [user@]host[:port] with ASCII letters, digits, '.', '-', ':' (IPv6 in brackets when a port follows), not starting with '-'.",
        at: location)
      return
    }
    // The same host twice with another user or port is another entry, named as written.
    var name = address
    if seen[name] != nil { name = text }
    if let first = seen[name] {
      builder.diagnostics.error(
        "\(SafeText.quoted(text)) is listed twice (first at \(first)); expected each host once.", at: location
      )
      return
    }
    seen[name] = location
    var vars: [String: Value] = [:]
    if name != address { vars["ansible_host"] = .string(address) }
    if let port { vars["ansible_port"] = .string(String(port)) }
    if let user { vars["ansible_user"] = .string(user) }
    let locations = vars.mapValues { _ in location }
    builder.host(name, vars: vars, varLocations: locations, group: "ungrouped", at: location)
  }

  static func parsePssh(_ text: String, file: String) -> AnsibleInventoryBuilder {
    var builder = AnsibleInventoryBuilder(file: file)
    builder.group("ungrouped", at: builder.at(1, 1))
    var seen: [String: SourceLocation] = [:]
    var lineNumber = 0
    for var line in InventoryFormat.lines(text) {
      lineNumber += 1
      // pssh ignores what follows '#'.
      if let hash = line.unicodeScalars.firstIndex(of: "#") { line = String(line.unicodeScalars[..<hash]) }
      let leading = line.unicodeScalars.prefix { $0 == " " || $0 == "\t" }.count
      let content = String(line).trimmingWhitespace()
      if content.isEmpty { continue }
      let location = builder.at(lineNumber, leading + 1)
      if content.unicodeScalars.contains(where: { $0 == " " || $0 == "\t" }) {
        builder.diagnostics.error(
          "\(SafeText.quoted(content)) is more than one word; expected one [user@]host[:port] per line in a pssh hosts file.",
          at: location)
        continue
      }
      entry(content, location: location, into: &builder, seen: &seen)
    }
    return builder
  }

  /// `web1,web2,` as Ansible reads `-i` with a comma: host names (with optional ports), blank
  /// entries ignored.
  static func parseInline(_ text: String) -> AnsibleInventoryBuilder {
    let file = "-i"
    var builder = AnsibleInventoryBuilder(file: file)
    builder.group("ungrouped", at: builder.at(1, 1))
    var seen: [String: SourceLocation] = [:]
    var offset = 0
    for piece in text.unicodeScalars.split(separator: ",", omittingEmptySubsequences: false) {
      defer { offset += piece.count + 1 }
      let word = String(String.UnicodeScalarView(piece))
      let leading = piece.prefix { $0 == " " }.count
      let trimmed = word.trimmingWhitespace()
      if trimmed.isEmpty { continue }
      entry(trimmed, location: builder.at(1, offset + leading + 1), into: &builder, seen: &seen)
    }
    if builder.hostOrder.isEmpty && !builder.diagnostics.hasErrors {
      builder.diagnostics.error(
        "the inventory list \(SafeText.quoted(text)) names no host; expected host names separated by commas, like 'web1,web2,'.",
        at: builder.at(1, 1))
    }
    return builder
  }
}
