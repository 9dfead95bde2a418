import Foundation
import SixtyAgentCore

/// Keys pushed in the last TTL, per (instance, OS user); several may be active at once.
// Sendable: `maxPerSlot` is constant and `keys`, the only mutable state, is behind `lock`.
public final class KeyStore: @unchecked Sendable {
  public struct Key: Sendable, Equatable {
    public var line: String
    public var fingerprint: String
    public var expiresAt: Date
    public var requestID: String
    public var principal: String
    public var from: [String]

    public init(
      line: String, fingerprint: String, expiresAt: Date, requestID: String, principal: String, from: [String]
    ) {
      self.line = line
      self.fingerprint = fingerprint
      self.expiresAt = expiresAt
      self.requestID = requestID
      self.principal = principal
      self.from = from
    }
  }

  struct Slot: Hashable {
    var instance: String
    var user: String
  }

  // `lock` protects `keys`; every operation is short and never awaits.
  private let lock = NSLock()
  private var keys: [Slot: [Key]] = [:]
  private let maxPerSlot: Int

  public init(maxPerSlot: Int = 64) { self.maxPerSlot = maxPerSlot }

  /// Stores `key`, dropping expired ones (and the oldest beyond `maxPerSlot`).
  public func add(_ key: Key, instance: String, user: String, now: Date) {
    lock.withLock {
      let slot = Slot(instance: instance, user: user)
      var list = keys[slot, default: []].filter { $0.expiresAt > now }
      list.append(key)
      if list.count > maxPerSlot { list.removeFirst(list.count - maxPerSlot) }
      keys[slot] = list
    }
  }

  /// The keys still valid at `now`.
  public func active(instance: String, user: String, now: Date) -> [Key] {
    lock.withLock {
      let slot = Slot(instance: instance, user: user)
      let list = keys[slot, default: []].filter { $0.expiresAt > now }
      keys[slot] = list.isEmpty ? nil : list
      return list
    }
  }

  /// Removes every expired key; returns how many keys remain active.
  @discardableResult
  public func purge(now: Date) -> Int {
    lock.withLock {
      var remaining = 0
      for (slot, list) in keys {
        let live = list.filter { $0.expiresAt > now }
        keys[slot] = live.isEmpty ? nil : live
        remaining += live.count
      }
      return remaining
    }
  }

  public func count(now: Date) -> Int {
    lock.withLock { keys.values.reduce(0) { $0 + $1.filter { $0.expiresAt > now }.count } }
  }
}
