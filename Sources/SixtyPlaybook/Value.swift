import SixtyCore

/// A variable's value: text, a list or a mapping, as written in YAML.
public indirect enum Value: Hashable, Sendable, CustomStringConvertible {
  case string(String)
  case list([Value])
  case map([String: Value])

  /// Converts a YAML node; scalars stay text, so `yes` and `010` keep their spelling.
  public init(_ node: YAMLNode) {
    switch node.content {
    case .scalar(let text, _): self = .string(node.isNull ? "" : text)
    case .sequence(let items): self = .list(items.map(Value.init))
    case .mapping(let pairs):
      var map: [String: Value] = [:]
      for pair in pairs { map[pair.key] = Value(pair.value) }
      self = .map(map)
    }
  }

  /// The text a template inserts: lists join with spaces, mappings render as `k=v` pairs.
  public var description: String {
    switch self {
    case .string(let text): text
    case .list(let items): items.map(\.description).joined(separator: " ")
    case .map(let map): map.keys.sorted().map { "\($0)=\(map[$0]!.description)" }.joined(separator: " ")
    }
  }

  /// Truthiness for `when`: empty, `false`, `no`, `off` and `0` are false.
  public var isTruthy: Bool {
    switch self {
    case .string(let text):
      switch text.lowercased() {
      case "", "false", "no", "off", "0": false
      default: true
      }
    case .list(let items): !items.isEmpty
    case .map(let map): !map.isEmpty
    }
  }

  public subscript(key: String) -> Value? {
    switch self {
    case .map(let map): map[key]
    case .list(let items): Int(key).flatMap { $0 >= 0 && $0 < items.count ? items[$0] : nil }
    case .string: nil
    }
  }
}
