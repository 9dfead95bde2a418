import SixtyCore

/// One machine of the fleet, as the inventory describes it.
public struct InventoryHost: Hashable, Sendable {
  public var name: String
  public var address: String
  /// Setting it (after `init`) marks it as given: see `portIsSet`.
  public var port: Int { didSet { portIsSet = true } }
  public var user: String?
  public var instanceID: String?
  public var zone: String?
  public var tags: [String: String]
  public var vars: [String: Value]
  /// Groups the host belongs to, in inventory order.
  public var groups: [String]
  public var location: SourceLocation?
  /// `ssh -o` options to reach this host (ProxyJump, ProxyCommand), "Name=value" each: its own
  /// (`proxy_jump`, `ssh_options`), then its groups' (the later group's first).
  public var sshOptions: [String] = []
  /// Whether the inventory gave the port (the host's or `defaults`); if not, ssh is given no
  /// `-p` and ssh_config's `Port` applies.
  public var portIsSet = false
  /// Hosts reached through one limited path (an Instance Connect Endpoint) share this key.
  public var connectionPath: String?
  /// How many hosts of that path may be connected at once.
  public var connectionLimit: Int?

  public init(
    name: String, address: String? = nil, port: Int = 22, user: String? = nil, instanceID: String? = nil,
    zone: String? = nil, tags: [String: String] = [:], vars: [String: Value] = [:], groups: [String] = [],
    location: SourceLocation? = nil
  ) {
    self.name = name
    self.address = address ?? name
    self.port = port
    self.user = user
    self.instanceID = instanceID
    self.zone = zone
    self.tags = tags
    self.vars = vars
    self.groups = groups
    self.location = location
  }

  /// `host.*` values visible to templates and conditions.
  public var facts: [String: Value] {
    var facts: [String: Value] = [
      "name": .string(name), "address": .string(address), "port": .string(String(port)),
      "tags": .map(tags.mapValues(Value.string)), "groups": .list(groups.map(Value.string)),
    ]
    if let user { facts["user"] = .string(user) }
    if let instanceID { facts["instance_id"] = .string(instanceID) }
    if let zone { facts["zone"] = .string(zone) }
    return facts
  }
}

/// A named set of hosts: an explicit list, a selector, or both (union).
public struct HostGroup: Hashable, Sendable {
  public var name: String
  public var hosts: [String]
  public var match: HostSelector?
  public var vars: [String: Value]
  public var location: SourceLocation?
  /// `ssh -o` options for every member (`proxy_jump`, `ssh_options`).
  public var sshOptions: [String] = []
}
