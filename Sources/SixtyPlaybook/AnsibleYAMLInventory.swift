import SixtyCore

/// Reads Ansible's YAML inventory format, as Ansible's `yaml` inventory plugin does.
///
/// ```yaml
/// all:
///   vars: {ntp_server: ntp.example.com}
///   hosts:
///     bastion.example.com:
///   children:
///     web:
///       hosts:
///         web[01:20].example.com: {ansible_user: deploy}
///       vars: {http_port: 80}
/// ```
///
/// Top-level keys are groups (usually just `all`); a group has `hosts` (a mapping of host
/// patterns to their variables), `vars` and `children` (a mapping of groups). Values are kept
/// as written.
enum AnsibleYAMLInventory {
  static let groupKeys = ["hosts", "vars", "children"]

  /// Whether a YAML mapping reads as an Ansible inventory: it has `all`, or every top-level value
  /// is empty or a mapping of only `hosts`, `vars` and `children`, at least one of them present.
  static func recognises(_ root: YAMLNode) -> Bool {
    guard let pairs = root.pairs, !pairs.isEmpty else { return false }
    if pairs.contains(where: { $0.key == "all" }) { return true }
    var anyGroupKey = false
    for pair in pairs {
      if pair.value.isNull { continue }
      guard let fields = pair.value.pairs else { return false }
      for field in fields {
        guard groupKeys.contains(field.key) else { return false }
        anyGroupKey = true
      }
    }
    return anyGroupKey
  }

  static func parse(_ root: YAMLNode, file: String) -> AnsibleInventoryBuilder {
    var builder = AnsibleInventoryBuilder(file: file)
    guard let pairs = root.pairs else { return builder }
    for pair in pairs {
      group(pair.key, pair.value, at: pair.keyLocation, parent: nil, into: &builder)
    }
    return builder
  }

  static func group(
    _ name: String, _ node: YAMLNode, at location: SourceLocation, parent: String?,
    into builder: inout AnsibleInventoryBuilder
  ) {
    guard builder.group(name, at: location) else { return }
    if let parent { builder.child(name, of: parent, at: location) }
    if node.isNull { return }
    guard let fields = node.pairs else {
      builder.diagnostics.error(
        "the group '\(name)' is \(node.kindDescription); expected a mapping with 'hosts', 'vars' or 'children'.",
        at: node.location)
      return
    }
    for field in fields {
      switch field.key {
      case "hosts":
        if field.value.isNull { continue }
        guard let hosts = field.value.pairs else {
          builder.diagnostics.error(
            "'hosts' of the group '\(name)' is \(field.value.kindDescription); expected a mapping of host names (or patterns like web[01:20]) to their variables.",
            at: field.value.location)
          continue
        }
        for host in hosts { self.host(host, group: name, into: &builder) }
      case "vars":
        if field.value.isNull { continue }
        guard let vars = field.value.pairs else {
          builder.diagnostics.error(
            "'vars' of the group '\(name)' is \(field.value.kindDescription); expected a mapping of variable names to values.",
            at: field.value.location)
          continue
        }
        for variable in vars {
          builder.variable(variable.key, Value(variable.value), group: name, at: variable.keyLocation)
        }
      case "children":
        if field.value.isNull { continue }
        guard let children = field.value.pairs else {
          builder.diagnostics.error(
            "'children' of the group '\(name)' is \(field.value.kindDescription); expected a mapping of group names.",
            at: field.value.location)
          continue
        }
        for child in children {
          group(child.key, child.value, at: child.keyLocation, parent: name, into: &builder)
        }
      default:
        builder.diagnostics.error(
          "unknown key \(SafeText.quoted(field.key)) in the group '\(name)'\(Suggestion.hint(for: field.key, in: groupKeys)); expected hosts, vars or children.",
          at: field.keyLocation)
      }
    }
  }

  static func host(_ pair: YAMLPair, group: String, into builder: inout AnsibleInventoryBuilder) {
    var vars: [String: Value] = [:]
    var locations: [String: SourceLocation] = [:]
    if !pair.value.isNull {
      guard let fields = pair.value.pairs else {
        builder.diagnostics.error(
          "the host \(SafeText.quoted(pair.key)) of the group '\(group)' is \(pair.value.kindDescription); expected a mapping of its variables (or nothing).",
          at: pair.value.location)
        return
      }
      for field in fields where builder.checkVariableName(field.key, at: field.keyLocation) {
        vars[field.key] = Value(field.value)
        locations[field.key] = field.value.location
      }
    }
    let expanded: (names: [String], port: Int?)
    do {
      expanded = try AnsibleHostPattern.expand(pair.key)
    } catch {
      builder.diagnostics.error(error.message, at: pair.keyLocation)
      return
    }
    if let port = expanded.port, vars["ansible_port"] == nil {
      vars["ansible_port"] = .string(String(port))
      locations["ansible_port"] = pair.keyLocation
    }
    for name in expanded.names {
      builder.host(name, vars: vars, varLocations: locations, group: group, at: pair.keyLocation)
    }
  }
}
