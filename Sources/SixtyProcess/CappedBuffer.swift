/// Output kept up to a cap, from its start (the executor's tasks) or its end (a notification
/// command, whose last line says why it failed); the rest is counted, not stored.
public struct CappedBuffer: Sendable, Equatable {
  /// Which bytes a full buffer keeps.
  public enum Keep: Sendable, Equatable {
    case head
    case tail
  }

  public let cap: Int
  public let keep: Keep
  public private(set) var bytes: [UInt8] = []
  public private(set) var dropped = 0

  public init(cap: Int, keeping keep: Keep = .head) {
    self.cap = cap
    self.keep = keep
  }

  public mutating func append(_ chunk: ArraySlice<UInt8>) {
    switch keep {
    case .head:
      let room = cap - bytes.count
      if room > 0 { bytes += chunk.prefix(room) }
      dropped += max(0, chunk.count - max(0, room))
    case .tail:
      bytes += chunk
      let excess = bytes.count - max(0, cap)
      if excess > 0 {
        bytes.removeFirst(excess)
        dropped += excess
      }
    }
  }

  /// The text, with a visible marker when output was cut.
  public var text: String {
    var text = String(decoding: bytes, as: UTF8.self)
    if dropped > 0 {
      if !text.hasSuffix("\n") && !text.isEmpty { text += "\n" }
      text += "[sixty: output truncated: \(dropped) more bytes not kept (cap \(cap) bytes)]\n"
    }
    return text
  }
}
