import SixtyCore

/// Where `{{ name }}` looks for values for one host, highest precedence first.
///
/// Precedence (highest first): extra vars (`-e`), play vars, host vars, group vars (later groups
/// in the inventory win), inventory-wide vars; host facts live under `host.`.
public struct VariableScope: Sendable {
  public var layers: [[String: Value]]
  public var host: InventoryHost?

  public init(layers: [[String: Value]], host: InventoryHost?) {
    self.layers = layers
    self.host = host
  }

  /// Looks up a dotted path such as `version`, `app.port` or `host.tags.role`.
  public func lookup(_ path: [String]) -> Value? {
    guard let first = path.first else { return nil }
    var value: Value?
    if first == "host" {
      guard let host else { return nil }
      // Common facts are read directly: building the facts map per lookup dominates large plans.
      if path.count >= 2 {
        switch path[1] {
        case "name": return path.count == 2 ? .string(host.name) : nil
        case "address": return path.count == 2 ? .string(host.address) : nil
        case "tags":
          if path.count == 3 { return host.tags[path[2]].map(Value.string) }
        default: break
        }
      }
      value = .map(host.facts)
    } else {
      for layer in layers {
        if let found = layer[first] {
          value = found
          break
        }
      }
    }
    for key in path.dropFirst() {
      guard let current = value else { return nil }
      value = current[key]
    }
    return value
  }

  /// Every top-level name in scope, for suggestions.
  public var names: Set<String> {
    var names: Set<String> = ["host"]
    for layer in layers { names.formUnion(layer.keys) }
    return names
  }
}
