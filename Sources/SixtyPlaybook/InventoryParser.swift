import SixtyCore

/// Reads inventory files.
///
/// ```yaml
/// vars: {domain: example.com}          # every host
/// defaults: {user: ubuntu, port: 22}   # host fields used when a host leaves them out
/// hosts:
///   web-1: {address: 10.0.0.5, tags: {role: web, env: prod}, instance_id: i-0abc, zone: eu-west-1a}
/// groups:
///   web: {match: role=web, vars: {port: 8080}}
///   canary: {hosts: [web-1]}
/// ```
public enum InventoryParser {
  static let hostKeys = [
    "address", "port", "user", "instance_id", "zone", "tags", "vars", "proxy_jump", "ssh_options",
  ]

  /// Loads `path` in any format `-i` reads (see `InventoryFormat`).
  public static func load(path: String) -> (Inventory?, [Diagnostic]) {
    InventoryFormat.load(path: path)
  }

  /// Loads `path` as Sixty's own YAML inventory.
  public static func loadNative(path: String) -> (Inventory?, [Diagnostic]) {
    NodeReader.read(
      YAMLLoader.load(path: path),
      empty: .error(
        "the inventory is empty; expected a mapping with 'hosts'.",
        at: SourceLocation(file: path, line: 1, column: 1))
    ) { root, reader in parse(root, file: path, reader: &reader) }
  }

  public static func parse(_ root: YAMLNode, file: String, reader: inout NodeReader) -> Inventory {
    var hosts: [InventoryHost] = []
    var groups: [HostGroup] = []
    var vars: [String: Value] = [:]
    var defaults = InventoryHost(name: "defaults")
    var defaultUser: String?
    var defaultPortIsSet = false
    var ec2: EC2InventorySource?
    if let sourceNode = root["source"] {
      let kind = reader.string(sourceNode, "'source' of the inventory")
      guard kind == "aws-ec2" else {
        if let kind {
          reader.error(
            "'\(kind)' is not an inventory source; expected aws-ec2 (or no 'source' for a static list).",
            at: sourceNode.location)
        }
        return Inventory(hosts: [])
      }
      ec2 = EC2InventorySource.parse(root, reader: &reader)
    }
    guard
      let pairs = reader.mapping(
        root, "the inventory",
        allowed: ec2 != nil ? EC2InventorySource.keys : ["vars", "defaults", "hosts", "groups"])
    else {
      return Inventory(hosts: [])
    }
    if let node = root["vars"] { vars = variables(node, "'vars'", reader: &reader) }
    if let node = root["defaults"],
      let entries = reader.mapping(node, "'defaults'", allowed: ["port", "user"])
    {
      for entry in entries {
        if entry.key == "port" {
          defaults.port = reader.int(entry.value, "'defaults.port'", range: 1...65535) ?? 22
          defaultPortIsSet = true
        } else if let user = reader.string(entry.value, "'defaults.user'"),
          checkUser(user, entry.value.location, &reader)
        {
          defaultUser = user
        }
      }
    }
    var seen: [String: SourceLocation] = [:]
    if let node = root["hosts"] {
      if let entries = node.pairs {
        hosts.reserveCapacity(entries.count)
        for entry in entries {
          guard
            reader.isFirst(
              entry.key, at: entry.keyLocation, in: &seen,
              else: {
                "the host '\(entry.key)' is defined twice (first at line \($0.line))."
              })
          else { continue }
          defaults.portIsSet = defaultPortIsSet
          if let host = host(entry, defaults: defaults, defaultUser: defaultUser, reader: &reader) {
            hosts.append(host)
          }
        }
      } else if !node.isNull {
        reader.error(
          "expected a mapping of host names to their settings for 'hosts', found \(node.kindDescription).",
          at: node.location)
      }
    } else if ec2 == nil {
      reader.error("the inventory has no 'hosts'; expected a mapping of host names.", at: root.location)
    }
    if let node = root["groups"], let entries = reader.mapping(node, "'groups'") {
      for entry in entries {
        if seen[entry.key] != nil {
          reader.error(
            "the group '\(entry.key)' has the same name as a host; expected distinct names so selectors stay unambiguous.",
            at: entry.keyLocation)
          continue
        }
        if entry.key == "all" {
          reader.error("'all' is reserved for every host; choose another group name.", at: entry.keyLocation)
          continue
        }
        guard HostSelector.isName(entry.key) else {
          reader.error(
            "'\(entry.key)' is not a valid group name; expected letters, digits, '-', '_', '.' or ':'.",
            at: entry.keyLocation)
          continue
        }
        guard
          let fields = reader.mapping(
            entry.value, "group '\(entry.key)'",
            allowed: ["hosts", "match", "vars", "proxy_jump", "ssh_options"])
        else {
          continue
        }
        var group = HostGroup(name: entry.key, hosts: [], match: nil, vars: [:], location: entry.keyLocation)
        for field in fields {
          switch field.key {
          case "hosts":
            for (name, location) in reader.stringList(field.value, "'hosts' of group '\(entry.key)'") ?? [] {
              if ec2 != nil {
                reader.error(
                  "the group '\(entry.key)' lists hosts by name, but an aws-ec2 inventory's hosts are found at run time; select them with 'match' (tags, globs).",
                  at: location)
                group.hosts.append(name)
                break
              }
              if seen[name] == nil {
                reader.error(
                  "the group '\(entry.key)' lists an unknown host '\(name)'\(Suggestion.hint(for: name, in: hosts.map(\.name))).",
                  at: location)
              }
              group.hosts.append(name)
            }
          case "match":
            let texts = reader.stringList(field.value, "'match' of group '\(entry.key)'") ?? []
            do {
              group.match = try HostSelector(union: texts.map(\.0))
            } catch {
              reader.error(error.message, at: texts.first?.1 ?? field.value.location)
            }
          case "vars":
            group.vars = variables(field.value, "'vars' of group '\(entry.key)'", reader: &reader)
          case "proxy_jump", "ssh_options":
            _ = sshSettings(field, of: "group '\(entry.key)'", into: &group.sshOptions, reader: &reader)
          default:
            break
          }
        }
        if group.hosts.isEmpty && group.match == nil {
          reader.error(
            "the group '\(entry.key)' has neither 'hosts' nor 'match'; expected at least one.",
            at: entry.keyLocation)
        }
        groups.append(group)
      }
    }
    _ = pairs
    var inventory = Inventory(hosts: hosts, groups: groups, vars: vars, source: file)
    inventory.ec2 = ec2
    return inventory
  }

  static func host(_ entry: YAMLPair, defaults: InventoryHost, defaultUser: String?, reader: inout NodeReader)
    -> InventoryHost?
  {
    let name = entry.key
    guard checkName(name, entry.keyLocation, &reader) else { return nil }
    var host = InventoryHost(name: name, port: defaults.port, user: defaultUser, location: entry.keyLocation)
    host.portIsSet = defaults.portIsSet
    if entry.value.isNull { return checkedAddress(host, entry, &reader) }
    guard let fields = reader.mapping(entry.value, "host '\(name)'", allowed: hostKeys) else { return nil }
    var ok = true
    for field in fields {
      let value = field.value
      switch field.key {
      case "address":
        if let address = reader.string(value, "'address' of host '\(name)'") {
          if !SafeText.isHostAddress(address) {
            reader.error(
              "the address \(SafeText.quoted(address)) of host '\(name)' is not a host name or IP address; expected ASCII letters, digits, '.', '-', ':' (like 10.0.0.5, web-1.example.com or [fe80::1%eth0]), not starting with '-'.",
              at: value.location)
            ok = false
          } else {
            host.address = address
          }
        }
      case "port":
        if let port = reader.int(value, "'port' of host '\(name)'", range: 1...65535) {
          host.port = port
          host.portIsSet = true
        } else {
          ok = false
        }
      case "user":
        if let user = reader.string(value, "'user' of host '\(name)'"),
          checkUser(user, value.location, &reader)
        {
          host.user = user
        } else {
          ok = false
        }
      case "instance_id":
        host.instanceID =
          reader.string(
            value, "'instance_id' of host '\(name)'", where: { $0.hasPrefix("i-") || $0.hasPrefix("mi-") }
          ) {
            "the instance_id '\($0)' of host '\(name)' does not look like an instance id; expected 'i-' followed by hex digits."
          } ?? host.instanceID
      case "zone":
        host.zone = reader.string(value, "'zone' of host '\(name)'")
      case "tags":
        for (key, text, location) in reader.stringMap(value, "'tags' of host '\(name)'") ?? [] {
          if !HostSelector.isName(key) {
            reader.error(
              "the tag name '\(key)' is not valid; expected letters, digits, '-', '_', '.', ':' or '/'.",
              at: location)
          }
          host.tags[key] = text
        }
      case "vars":
        host.vars = variables(value, "'vars' of host '\(name)'", reader: &reader)
      case "proxy_jump", "ssh_options":
        if !sshSettings(field, of: "host '\(name)'", into: &host.sshOptions, reader: &reader) { ok = false }
      default:
        break  // Unknown keys were reported by `mapping(_:_:allowed:)`.
      }
    }
    return ok ? checkedAddress(host, entry, &reader) : nil
  }

  /// A host with no `address` is reached by its name, so the name must be one ssh takes as a host
  /// and nothing else (`root@evil` would pick the user; spaces or quotes would be more).
  static func checkedAddress(_ host: InventoryHost, _ entry: YAMLPair, _ reader: inout NodeReader)
    -> InventoryHost?
  {
    guard host.address == host.name, !SafeText.isHostAddress(host.name) else { return host }
    reader.error(
      "the host \(SafeText.quoted(host.name)) has no 'address', and its name is not a host name or IP address to connect to; expected 'address: …' (like 10.0.0.5 or web-1.example.com), or a name of ASCII letters, digits, '.', '-', '_' and ':'.",
      at: entry.keyLocation)
    return nil
  }

  /// `proxy_jump: [user@]host[:port]` or `ssh_options: [Key=Value, …]` of a host or group, as ssh
  /// `-o` options (ProxyJump first). False when any of them is refused.
  static func sshSettings(
    _ field: YAMLPair, of owner: String, into options: inout [String], reader: inout NodeReader
  ) -> Bool {
    if field.key == "proxy_jump" {
      guard let jump = reader.string(field.value, "'proxy_jump' of \(owner)") else { return false }
      if let problem = SSHClientOption.jumpProblem(jump) {
        reader.error(
          "the proxy_jump \(SafeText.quoted(jump)) of \(owner) is not valid: \(problem); expected [user@]host[:port], comma-separated for several hops.",
          at: field.value.location)
        return false
      }
      options.insert("ProxyJump=" + jump, at: 0)
      return true
    }
    var ok = true
    for (option, location) in reader.stringList(field.value, "'ssh_options' of \(owner)") ?? [] {
      if let problem = SSHClientOption.inventoryProblem(option) {
        reader.error(
          "the ssh option \(SafeText.quoted(option)) of \(owner) is refused: \(problem).", at: location)
        ok = false
      } else {
        options.append(option)
      }
    }
    return ok
  }

  static func checkName(_ name: String, _ location: SourceLocation, _ reader: inout NodeReader) -> Bool {
    guard !name.hasPrefix("-"), HostSelector.isName(name), name != "all" else {
      reader.error(
        "'\(name)' is not a valid host name; expected letters, digits, '.', '-', '_' or ':', not starting with '-'.",
        at: location)
      return false
    }
    return true
  }

  static func checkUser(_ user: String, _ location: SourceLocation, _ reader: inout NodeReader) -> Bool {
    let valid = SafeText.isUserName(user)
    if !valid {
      reader.error(
        "\(SafeText.quoted(user)) is not a valid user name; expected up to 32 ASCII letters, digits, '.', '_', '-' or '@' (and '$' at the end), not starting with '-'.",
        at: location)
    }
    return valid
  }

  /// Reads a `vars:` mapping; names must be identifiers and `host` is reserved for host facts.
  public static func variables(_ node: YAMLNode, _ what: String, reader: inout NodeReader) -> [String: Value]
  {
    guard let pairs = reader.mapping(node, what) else { return [:] }
    var vars: [String: Value] = [:]
    for pair in pairs {
      if pair.key == "host" {
        reader.error(
          "'host' is reserved for host facts (host.name, host.address, …); choose another variable name.",
          at: pair.keyLocation)
        continue
      }
      guard Template.isIdentifier(pair.key), !pair.key.contains("-") else {
        reader.error(
          "'\(pair.key)' is not a valid variable name; expected letters, digits and '_'.",
          at: pair.keyLocation)
        continue
      }
      vars[pair.key] = Value(pair.value)
    }
    return vars
  }
}
