/// A value as JSON: text as a string, a list as an array, a mapping as an object (so a run
/// request handed to another process keeps its `-e` values' types).
extension Value: Codable {
  public init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    if let text = try? container.decode(String.self) {
      self = .string(text)
    } else if let items = try? container.decode([Value].self) {
      self = .list(items)
    } else {
      self = .map(try container.decode([String: Value].self))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    switch self {
    case .string(let text): try container.encode(text)
    case .list(let items): try container.encode(items)
    case .map(let map): try container.encode(map)
    }
  }
}
