import SixtyCore

/// Ansible's inventory model (groups with hosts, children and vars; the implicit `all` and
/// `ungrouped`), filled by the INI, YAML, pssh and inline-list readers and turned into Sixty's
/// `Inventory`.
///
/// - Group variables apply to the group's members and its children's; a child's win over its
///   parent's, as in Ansible (groups are ordered by depth, then name). `all`'s variables are
///   the inventory's.
/// - `ansible_host`, `ansible_port` and `ansible_user` (and the older `ansible_ssh_*`) give the
///   host's address, port and user, `instance_id` (or ec2.py's `ec2_id`) its instance for key
///   pushes, `availability_zone` (`ec2_placement`, `placement.availability_zone`) its zone, and a
///   mapping `tags` its tags, from the most specific place that sets them; every variable, these
///   included, stays visible to templates.
struct AnsibleInventoryBuilder {
  struct Group {
    var name: String
    var hosts: [String] = []
    var children: [String] = []
    var vars: [String: Value] = [:]
    var varLocations: [String: SourceLocation] = [:]
    var location: SourceLocation
  }

  struct Host {
    var name: String
    var vars: [String: Value] = [:]
    var varLocations: [String: SourceLocation] = [:]
    var location: SourceLocation
  }

  /// The most hosts one pattern (`web[0001:9999]`) may expand to.
  static let maximumRange = 100_000
  /// The most hosts an inventory may hold.
  static let maximumHosts = 1_000_000

  let file: String
  var groups: [String: Group] = [:]
  var groupOrder: [String] = []
  var hosts: [String: Host] = [:]
  var hostOrder: [String] = []
  var allVars: [String: Value] = [:]
  var allVarLocations: [String: SourceLocation] = [:]
  var diagnostics = DiagnosticBag()
  struct Edge: Hashable {
    var parent: String
    var child: String
  }
  var edges: Set<Edge> = []

  /// The most (host, group) memberships an inventory may hold: deep chains of `children` over
  /// many hosts multiply them.
  static let maximumMemberships = 20_000_000

  init(file: String) { self.file = file }

  func at(_ line: Int, _ column: Int) -> SourceLocation {
    SourceLocation(file: file, line: line, column: column)
  }

  /// Makes sure `name` exists as a group; false (with an error) for a name Sixty cannot select.
  @discardableResult
  mutating func group(_ name: String, at location: SourceLocation) -> Bool {
    if name == "all" || groups[name] != nil { return true }
    guard HostSelector.isName(name), !name.hasPrefix("-") else {
      diagnostics.error(
        "\(SafeText.quoted(name)) is not a valid group name; expected letters, digits, '-', '_', '.' or ':', not starting with '-'.",
        at: location)
      return false
    }
    groups[name] = Group(name: name, location: location)
    groupOrder.append(name)
    return true
  }

  /// Adds a host (or merges into the one of that name, later variables winning) to `group`.
  mutating func host(
    _ name: String, vars: [String: Value], varLocations: [String: SourceLocation], group: String,
    at location: SourceLocation
  ) {
    guard !name.hasPrefix("-"), HostSelector.isName(name), name != "all" else {
      diagnostics.error(
        "\(SafeText.quoted(name)) is not a valid host name; expected letters, digits, '.', '-', '_' or ':', not starting with '-'.",
        at: location)
      return
    }
    if hosts[name] == nil {
      guard hostOrder.count < Self.maximumHosts else {
        if hostOrder.count == Self.maximumHosts {
          diagnostics.error(
            "the inventory has more than \(Self.maximumHosts) hosts; expected fewer (split it, or narrow its ranges).",
            at: location)
          hostOrder.append("")  // Report once.
        }
        return
      }
      hosts[name] = Host(name: name, location: location)
      hostOrder.append(name)
    }
    for (key, value) in vars {
      hosts[name]!.vars[key] = value
      hosts[name]!.varLocations[key] = varLocations[key] ?? location
    }
    if group != "all", groups[group] != nil, groups[group]!.hosts.last != name {
      groups[group]!.hosts.append(name)
    }
  }

  mutating func child(_ child: String, of parent: String, at location: SourceLocation) {
    guard group(child, at: location) else { return }
    if child == "all" {
      diagnostics.error(
        "the group 'all' cannot be a child of '\(parent)'; it holds every host.", at: location)
      return
    }
    guard parent != "all", groups[parent] != nil else { return }
    // A set of edges, so a group with many children costs no quadratic search.
    if edges.insert(Edge(parent: parent, child: child)).inserted { groups[parent]!.children.append(child) }
  }

  mutating func variable(_ key: String, _ value: Value, group: String, at location: SourceLocation) {
    guard checkVariableName(key, at: location) else { return }
    if group == "all" {
      allVars[key] = value
      allVarLocations[key] = location
    } else if groups[group] != nil {
      groups[group]!.vars[key] = value
      groups[group]!.varLocations[key] = location
    }
  }

  /// Variable names are identifiers (checked on Unicode scalars); `host` is Sixty's host facts.
  mutating func checkVariableName(_ key: String, at location: SourceLocation) -> Bool {
    if key == "host" {
      diagnostics.error(
        "'host' is reserved for host facts (host.name, host.address, …); choose another variable name.",
        at: location)
      return false
    }
    guard Template.isIdentifier(key), !key.contains("-"),
      key.unicodeScalars.first.map({ !("0"..."9").contains($0) }) ?? false
    else {
      diagnostics.error(
        "\(SafeText.quoted(key)) is not a valid variable name; expected letters, digits and '_'.",
        at: location)
      return false
    }
    return true
  }

  /// Groups in the order their variables apply: parents before children (by depth below
  /// `all`), then by name, as Ansible merges them. Reports cycles of `children`.
  mutating func orderedGroups() -> [String] {
    var depth: [String: Int] = [:]
    var state: [String: UInt8] = [:]  // 1 visiting, 2 done
    var parents: [String: [String]] = [:]
    for name in groupOrder {
      for child in groups[name]!.children { parents[child, default: []].append(name) }
    }
    // Depth = longest chain of parents above; iterative to bound the stack on hostile input.
    for start in groupOrder where state[start] == nil {
      var stack: [(String, Int)] = [(start, 0)]
      while let (name, next) = stack.last {
        if next == 0 {
          if state[name] == 2 {
            stack.removeLast()
            continue
          }
          state[name] = 1
        }
        let above = parents[name] ?? []
        if next < above.count {
          stack[stack.count - 1].1 = next + 1
          let parent = above[next]
          if state[parent] == 1 {
            diagnostics.error(
              "the group '\(parent)' is its own descendant through '\(name)'; expected 'children' without cycles.",
              at: groups[parent]!.location)
            continue
          }
          if state[parent] != 2 { stack.append((parent, 0)) }
        } else {
          depth[name] = (above.compactMap { depth[$0] }.max() ?? 0) + 1
          state[name] = 2
          stack.removeLast()
        }
      }
    }
    return groupOrder.sorted { (depth[$0] ?? 0, $0) < (depth[$1] ?? 0, $1) }
  }

  /// The inventory, with each host's connection fields taken from its variables.
  mutating func build() -> Inventory {
    for name in hostOrder where !name.isEmpty {
      if groups[name] != nil {
        diagnostics.error(
          "the group '\(name)' has the same name as a host; expected distinct names so selectors stay unambiguous.",
          at: groups[name]!.location)
      }
    }
    let order = orderedGroups()
    // Members of each group, children's included, in host order.
    var members: [String: Set<String>] = [:]
    let rank = Dictionary(uniqueKeysWithValues: hostOrder.enumerated().map { ($1, $0) })
    var memberships = 0
    for name in order.reversed() {
      var set = Set(groups[name]!.hosts)
      for child in groups[name]!.children { set.formUnion(members[child] ?? []) }
      memberships += set.count
      guard memberships <= Self.maximumMemberships else {
        diagnostics.error(
          "the inventory's groups hold more than \(Self.maximumMemberships) host memberships (through 'children'); expected fewer or shallower groups.",
          at: groups[name]!.location)
        return Inventory(hosts: [], source: file)
      }
      members[name] = set
    }
    var grouped = Set<String>()
    for name in order where name != "ungrouped" { grouped.formUnion(members[name] ?? []) }
    if groups["ungrouped"] == nil {
      groups["ungrouped"] = Group(name: "ungrouped", location: at(1, 1))
    }
    let ungrouped = hostOrder.filter { !$0.isEmpty && !grouped.contains($0) }
    members["ungrouped", default: []].formUnion(ungrouped)
    var hostGroups: [String: [String]] = [:]
    let finalOrder = order.contains("ungrouped") ? order : order + ["ungrouped"]
    for name in finalOrder {
      for host in members[name] ?? [] { hostGroups[host, default: []].append(name) }
    }
    var result: [InventoryHost] = []
    result.reserveCapacity(hostOrder.count)
    for name in hostOrder where !name.isEmpty {
      let entry = hosts[name]!
      var host = InventoryHost(name: name, location: entry.location)
      var vars = entry.vars
      // The most specific definition of a connection variable wins: the host, then its groups
      // (the later in `finalOrder`, the more specific), then `all`.
      func lookup(_ keys: [String]) -> (Value, SourceLocation)? {
        for key in keys {
          if let value = entry.vars[key] { return (value, entry.varLocations[key] ?? entry.location) }
        }
        for group in (hostGroups[name] ?? []).reversed() {
          for key in keys {
            if let value = groups[group]!.vars[key] {
              return (value, groups[group]!.varLocations[key] ?? groups[group]!.location)
            }
          }
        }
        for key in keys {
          if let value = allVars[key] { return (value, allVarLocations[key] ?? entry.location) }
        }
        return nil
      }
      var ok = true
      if let (value, location) = lookup(["ansible_host", "ansible_ssh_host"]) {
        if case .string(let address) = value, SafeText.isHostAddress(address) {
          host.address =
            address.hasPrefix("[") && address.hasSuffix("]")
            ? String(address.dropFirst().dropLast()) : address
        } else {
          diagnostics.error(
            "the ansible_host \(SafeText.quoted(value.description)) of host '\(name)' is not a host name or IP address; expected ASCII letters, digits, '.', '-', ':' (like 10.0.0.5 or web-1.example.com), not starting with '-'.",
            at: location)
          ok = false
        }
      } else if !SafeText.isHostAddress(name) {
        // Without ansible_host the name is the ssh destination: it must read as nothing else.
        diagnostics.error(
          "the host name \(SafeText.quoted(name)) is not a host name or IP address ssh can take as it is; expected ASCII letters, digits, '.', '-', ':', or an ansible_host that is one.",
          at: entry.location)
        ok = false
      }
      if let (value, location) = lookup(["ansible_port", "ansible_ssh_port"]) {
        if case .string(let text) = value, let port = Int(text), (1...65535).contains(port) {
          host.port = port
        } else {
          diagnostics.error(
            "the ansible_port \(SafeText.quoted(value.description)) of host '\(name)' is not a port; expected a whole number from 1 to 65535.",
            at: location)
          ok = false
        }
      }
      if let (value, location) = lookup(["ansible_user", "ansible_ssh_user"]) {
        if case .string(let user) = value, SafeText.isUserName(user) {
          host.user = user
        } else {
          diagnostics.error(
            "the ansible_user \(SafeText.quoted(value.description)) of host '\(name)' is not a valid user name; expected up to 32 ASCII letters, digits, '.', '_', '-' or '@', not starting with '-'.",
            at: location)
          ok = false
        }
      }
      // The instance to push keys to, named as Ansible's aws_ec2 plugin (instance_id) or the
      // older ec2.py script (ec2_id) name it.
      if let (value, location) = lookup(["instance_id", "ec2_id"]) {
        if case .string(let id) = value, id.hasPrefix("i-") || id.hasPrefix("mi-"),
          id.utf8.allSatisfy({ SafeText.isAlphanumeric($0) || $0 == UInt8(ascii: "-") }), id.utf8.count <= 64
        {
          host.instanceID = id
        } else {
          diagnostics.error(
            "the instance_id \(SafeText.quoted(value.description)) of host '\(name)' does not look like an instance id; expected 'i-' followed by hex digits.",
            at: location)
          ok = false
        }
      }
      if let (value, _) = lookup(["availability_zone", "ec2_placement"]), case .string(let zone) = value {
        host.zone = zone
      } else if case .map(let placement)? = lookup(["placement"])?.0,
        case .string(let zone)? = placement["availability_zone"]
      {
        host.zone = zone
      }
      // A mapping named `tags` (what Ansible's aws_ec2 plugin gives each host) is the host's tags,
      // so tag selectors (`role=web`) work; a `tags` of another shape is only a variable.
      if case .map(let tags)? = lookup(["tags"])?.0 {
        for (key, value) in tags {
          guard case .string(let text) = value, HostSelector.isName(key) else { continue }
          host.tags[key] = text
        }
      }
      vars.removeValue(forKey: "host")
      host.vars = vars
      if ok { result.append(host) }
    }
    result.sort { (rank[$0.name] ?? 0) < (rank[$1.name] ?? 0) }
    let hostGroupsList = finalOrder.map { name in
      let group = groups[name]!
      return HostGroup(
        name: name, hosts: (members[name] ?? []).sorted { (rank[$0] ?? 0) < (rank[$1] ?? 0) }, match: nil,
        vars: group.vars, location: group.location)
    }
    return Inventory(hosts: result, groups: hostGroupsList, vars: allVars, source: file)
  }
}

/// Host patterns as Ansible writes them: `host`, `host:port`, `[ipv6]:port`, bare IPv6, and
/// ranges `web[01:20].example.com`, `db-[a:c]`, `node[0:10:2]` (several ranges multiply).
enum AnsibleHostPattern {
  struct Failure: Error {
    var message: String
  }

  /// The host names and the port of `pattern`.
  /// - Throws: `Failure` for a malformed range or a range of more than `limit` hosts.
  static func expand(_ pattern: String, limit: Int = AnsibleInventoryBuilder.maximumRange) throws(Failure)
    -> (
      names: [String], port: Int?
    )
  {
    let (base, port) = try splitPort(pattern)
    return (try expandRanges(base, limit: limit), port)
  }

  /// Separates `host:port` and `[v6]:port`; a name with two or more ':' is an IPv6 address.
  static func splitPort(_ pattern: String) throws(Failure) -> (String, Int?) {
    let scalars = Array(pattern.unicodeScalars)
    if scalars.first == "[", let close = scalars.firstIndex(of: "]") {
      let inner = String(String.UnicodeScalarView(scalars[1..<close]))
      if inner.unicodeScalars.filter({ $0 == ":" }).count >= 2 {
        let rest = scalars[(close + 1)...]
        if rest.isEmpty { return (inner, nil) }
        if rest.first == ":" {
          return (inner, try port(String(String.UnicodeScalarView(rest.dropFirst())), in: pattern))
        }
      }
    }
    // Colons outside brackets.
    var depth = 0
    var colons: [Int] = []
    for (i, c) in scalars.enumerated() {
      if c == "[" {
        depth += 1
      } else if c == "]" {
        depth = max(0, depth - 1)
      } else if c == ":" && depth == 0 {
        colons.append(i)
      }
    }
    if colons.count == 1 {
      let i = colons[0]
      return (
        String(String.UnicodeScalarView(scalars[..<i])),
        try port(String(String.UnicodeScalarView(scalars[(i + 1)...])), in: pattern)
      )
    }
    return (pattern, nil)
  }

  static func port(_ text: String, in pattern: String) throws(Failure) -> Int {
    guard !text.isEmpty, text.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }),
      text.unicodeScalars.count <= 5,
      let port = Int(text), (1...65535).contains(port)
    else {
      throw Failure(
        message:
          "the port \(SafeText.quoted(text)) of \(SafeText.quoted(pattern)) is not a port; expected a whole number from 1 to 65535."
      )
    }
    return port
  }

  /// Expands every `[begin:end]` or `[begin:end:step]` of `pattern`.
  static func expandRanges(_ pattern: String, limit: Int) throws(Failure) -> [String] {
    enum Segment {
      case text(String)
      case choices([String])
    }
    var segments: [Segment] = []
    var literal = String.UnicodeScalarView()
    var scalars = pattern.unicodeScalars[...]
    var count = 1
    while let c = scalars.first {
      scalars = scalars.dropFirst()
      guard c == "[", let close = scalars.firstIndex(of: "]"), scalars[..<close].contains(":") else {
        literal.append(c)
        continue
      }
      let body = String(String.UnicodeScalarView(scalars[..<close]))
      scalars = scalars[scalars.index(after: close)...]
      let choices = try range(body, in: pattern, limit: limit)
      count = count.multipliedReportingOverflow(by: choices.count).partialValue
      if count > limit || count < 0 {
        throw Failure(
          message:
            "the host pattern \(SafeText.quoted(pattern)) expands to more than \(limit) hosts; expected a smaller range."
        )
      }
      segments.append(.text(String(literal)))
      literal = String.UnicodeScalarView()
      segments.append(.choices(choices))
    }
    segments.append(.text(String(literal)))
    var names = [""]
    for segment in segments {
      switch segment {
      case .text(let text): names = names.map { $0 + text }
      case .choices(let choices): names = names.flatMap { head in choices.map { head + $0 } }
      }
    }
    return names
  }

  /// The values of one range body, `begin:end[:step]`, numeric (zero-padded when `begin` is) or
  /// one ASCII letter to another.
  static func range(_ body: String, in pattern: String, limit: Int) throws(Failure) -> [String] {
    let bounds = body.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    func fail(_ why: String) -> Failure {
      Failure(
        message: "the host range \(SafeText.quoted("[" + body + "]")) in \(SafeText.quoted(pattern)) \(why).")
    }
    guard bounds.count == 2 || bounds.count == 3 else { throw fail("is not begin:end or begin:end:step") }
    let begin = bounds[0].isEmpty ? "0" : bounds[0]
    let end = bounds[1]
    guard !end.isEmpty else { throw fail("has no end; expected begin:end") }
    var step = 1
    if bounds.count == 3 {
      guard let value = Int(bounds[2]), value >= 1 else {
        throw fail("has a step that is not a whole number of at least 1")
      }
      step = value
    }
    let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".unicodeScalars)
    if begin.unicodeScalars.count == 1, end.unicodeScalars.count == 1,
      let from = letters.firstIndex(of: begin.unicodeScalars.first!),
      let to = letters.firstIndex(of: end.unicodeScalars.first!)
    {
      guard from <= to else { throw fail("runs backwards; expected begin <= end") }
      return stride(from: from, through: to, by: step).map { String(letters[$0]) }
    }
    let digits: (String) -> Bool = {
      !$0.isEmpty && $0.unicodeScalars.allSatisfy { ("0"..."9").contains($0) }
    }
    guard digits(begin), digits(end), begin.unicodeScalars.count <= 18, end.unicodeScalars.count <= 18,
      let from = Int(begin), let to = Int(end)
    else {
      throw fail("is neither numbers nor single letters; expected something like [01:20] or [a:c]")
    }
    guard from <= to else { throw fail("runs backwards; expected begin <= end") }
    let width = begin.hasPrefix("0") && begin.count > 1 ? begin.count : 0
    if width > 0 && width != end.count {
      throw fail("pads its begin to \(width) digits but not its end; expected equal-length begin and end")
    }
    guard (to - from) / step < limit else {
      throw Failure(
        message:
          "the host pattern \(SafeText.quoted(pattern)) expands to more than \(limit) hosts; expected a smaller range."
      )
    }
    return stride(from: from, through: to, by: step).map { value in
      let text = String(value)
      return width > text.count ? String(repeating: "0", count: width - text.count) + text : text
    }
  }
}
