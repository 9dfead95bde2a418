import SixtyCore

/// The fleet: hosts in file order, groups, and inventory-wide variables.
public struct Inventory: Sendable {
  public var hosts: [InventoryHost]
  public var groups: [String: HostGroup]
  public var groupOrder: [String]
  public var vars: [String: Value]
  public var source: String?
  /// Set when the hosts come from EC2 (`source: aws-ec2`): `hosts` is empty until resolved.
  public var ec2: EC2InventorySource?
  let index: [String: Int]

  public init(
    hosts: [InventoryHost], groups: [HostGroup] = [], vars: [String: Value] = [:], source: String? = nil
  ) {
    var index: [String: Int] = [:]
    for (i, host) in hosts.enumerated() { index[host.name] = i }
    self.index = index
    self.groups = Dictionary(groups.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    self.groupOrder = groups.map(\.name)
    self.vars = vars
    self.source = source
    // Resolve group membership once so selectors and templates can use host.groups.
    var resolvedHosts = hosts
    var groupOptions = [[String]](repeating: [], count: hosts.count)
    for group in groups {
      for i in Inventory.members(of: group, hosts: hosts, index: index) {
        resolvedHosts[i].groups.append(group.name)
        // ssh keeps an option's first value: the host's own, then the later group's.
        if !group.sshOptions.isEmpty { groupOptions[i].insert(contentsOf: group.sshOptions, at: 0) }
      }
    }
    for i in resolvedHosts.indices where !groupOptions[i].isEmpty {
      resolvedHosts[i].sshOptions += groupOptions[i]
    }
    self.hosts = resolvedHosts
  }

  public func host(named name: String) -> InventoryHost? { index[name].map { hosts[$0] } }

  /// This inventory with `hosts` in place of its (dynamic) ones: same groups, vars and source.
  public func resolved(hosts: [InventoryHost]) -> Inventory {
    var copy = Inventory(
      hosts: hosts, groups: groupOrder.compactMap { groups[$0] }, vars: vars, source: source)
    copy.ec2 = ec2
    return copy
  }

  static func members(of group: HostGroup, hosts: [InventoryHost], index: [String: Int]) -> [Int] {
    var result = Set<Int>()
    for name in group.hosts { if let i = index[name] { result.insert(i) } }
    if let match = group.match {
      for (i, host) in hosts.enumerated() where Inventory.matchesTags(match, host) { result.insert(i) }
    }
    return result.sorted()
  }

  /// Tag-only selector evaluation, used for group `match:` (which may not name other groups).
  public static func matchesTags(_ selector: HostSelector, _ host: InventoryHost) -> Bool {
    selector.matches(tags: host.tags) { Glob.matches($0, host.name) }
  }

  /// A selector term that names nothing in the inventory.
  public struct UnknownName: Error, Sendable {
    public var name: String
    public var suggestion: String?
  }

  /// The hosts a selector picks, in inventory order.
  /// - Throws: `UnknownName` for a term that is neither a group, a host, nor a glob.
  public func select(_ selector: HostSelector) throws(UnknownName) -> [InventoryHost] {
    var chosen = [Bool](repeating: false, count: hosts.count)
    for clauses in selector.alternatives {
      var current = [Bool](repeating: true, count: hosts.count)
      for clause in clauses {
        let members = try self.members(clause.term)
        for i in 0..<hosts.count where current[i] { current[i] = members(i) != clause.negated }
      }
      for i in 0..<hosts.count where current[i] { chosen[i] = true }
    }
    return hosts.indices.filter { chosen[$0] }.map { hosts[$0] }
  }

  func members(_ term: HostSelector.Term) throws(UnknownName) -> (Int) -> Bool {
    switch term {
    case .all:
      return { _ in true }
    case .tag(let key, let value, let equal):
      return { i in HostSelector.tag(key, value, equal: equal, in: self.hosts[i].tags) }
    case .name(let name):
      if groups[name] != nil { return { i in self.hosts[i].groups.contains(name) } }
      if let hostIndex = index[name] { return { i in i == hostIndex } }
      if Glob.isPattern(name) { return { i in Glob.matches(name, self.hosts[i].name) } }
      throw UnknownName(
        name: name, suggestion: Suggestion.closest(to: name, in: groupOrder + hosts.map(\.name)))
    }
  }
}

extension Inventory {
  /// For a selector that picked no host: how its terms combine (a comma group is an AND) and
  /// the names or tag values near those it asked for, as a clause starting with "; ", or "".
  public func emptySelectionHint(_ selector: HostSelector, repeating: String) -> String {
    var sentences: [String] = []
    if let combination = selector.combinationHint(repeating: repeating) { sentences.append(combination) }
    var near: [String] = []
    // A few distinct terms are enough to point at a typo, and keep this linear in the hosts.
    var seen = Set<String>()
    let terms = selector.alternatives.joined().filter { !$0.negated && seen.insert($0.text).inserted }.prefix(
      20)
    for clause in terms {
      switch clause.term {
      case .all:
        continue
      case .name(let name):
        guard Glob.isPattern(name), !hosts.contains(where: { Glob.matches(name, $0.name) }) else { continue }
        let stem = String(name.unicodeScalars.prefix { !"*?[".unicodeScalars.contains($0) })
        if let hit = Suggestion.closest(to: stem, in: groupOrder + hosts.map(\.name)) {
          near.append("'\(hit)' instead of '\(name)'")
        }
      case .tag(let key, let value, let equal):
        guard equal, !hosts.contains(where: { HostSelector.tag(key, value, equal: true, in: $0.tags) }) else {
          continue
        }
        let values = Set(hosts.compactMap { $0.tags[key] })
        if values.isEmpty {
          let keys = Set(hosts.flatMap(\.tags.keys))
          if let hit = Suggestion.closest(to: key, in: keys.sorted()) {
            near.append("the tag '\(hit)' instead of '\(key)'")
          } else {
            sentences.append("no host has a tag '\(key)'")
          }
        } else if let hit = Suggestion.closest(to: value, in: values.sorted()) {
          near.append("'\(key)=\(hit)' instead of '\(clause.text)'")
        }
      }
    }
    if !near.isEmpty {
      let unique = near.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
      sentences.append("did you mean \(unique.prefix(3).joined(separator: ", "))")
    }
    return sentences.isEmpty ? "" : "; " + sentences.joined(separator: "; ")
  }
}
