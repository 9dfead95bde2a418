import Foundation
import SixtyCore

/// One of N deterministic parts of a run's targets (`--shard I/N`, I counted from 1).
///
/// The targets (after `--limit`) are ranked by the SHA-256 of each host's name (ties, which need
/// equal names, by name), and shard I takes the ranks r with r mod N == I − 1: the parts do not
/// depend on the inventory's order, every host is in exactly one, and their sizes differ by at
/// most one.
public struct Shard: Sendable, Codable, Equatable, CustomStringConvertible {
  /// 1 … count.
  public var index: Int
  public var count: Int

  /// The most shards a run may have.
  public static let maxCount = 1000

  public init(index: Int, count: Int) {
    self.index = index
    self.count = count
  }

  /// `I/N`, I and N integers with 1 ≤ I ≤ N ≤ `maxCount`.
  /// - Throws: a sentence naming the value and what was expected.
  public init(parsing text: String) throws(DiagnosticsError) {
    func fail(_ why: String) -> DiagnosticsError {
      DiagnosticsError([
        .error(
          "--shard '\(SafeText.escaped(String(text.prefix(40))))' \(why); expected I/N with 1 ≤ I ≤ N ≤ \(Shard.maxCount), like 2/4.",
          at: nil)
      ])
    }
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2 else { throw fail("is not of the form I/N") }
    guard parts.allSatisfy({ !$0.isEmpty && $0.count <= 4 && $0.allSatisfy { $0 >= "0" && $0 <= "9" } }),
      let index = Int(parts[0]), let count = Int(parts[1])
    else { throw fail("does not hold two whole numbers") }
    guard count >= 1, count <= Shard.maxCount else {
      throw fail("has \(count) shards")
    }
    guard index >= 1, index <= count else {
      throw fail("names shard \(index) of \(count) (shards count from 1)")
    }
    self.init(index: index, count: count)
  }

  public var description: String { "\(index)/\(count)" }

  /// The rank order of `names`: by the SHA-256 of each name, then by name.
  public static func ranked(_ names: some Sequence<String>) -> [String] {
    let unique = Array(Set(names))
    // Lowercase hex of equal length sorts as the digests' bytes do.
    let keyed = unique.map { name in (digest: FileDigest.sha256(Array(name.utf8)), name: name) }
    return keyed.sorted { a, b in a.digest != b.digest ? a.digest < b.digest : a.name < b.name }.map(\.name)
  }

  /// The names of `names` that this shard takes.
  public func members(of names: some Sequence<String>) -> Set<String> {
    var members = Set<String>()
    for (rank, name) in Shard.ranked(names).enumerated() where rank % count == index - 1 {
      members.insert(name)
    }
    return members
  }
}
