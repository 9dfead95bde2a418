import Foundation
import SixtyCore

/// Several Instance Connect endpoints tried in order: `--endpoint`, `--endpoint-url` or
/// `AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT` as one URL or as URLs separated by commas
/// (`http://b1:8600,http://b2:8600`), for broker replicas that share one database.
///
/// The text is hostile (a flag, the environment, a recorded run): it is read as UTF-8 bytes, and
/// every item must be printable ASCII (an international host name in its `xn--` form), an
/// `http://` or `https://` URL with a host, listed once; at most `maxCount` of them.
public enum EndpointList {
  /// More would only multiply the time a push can take when they are all down.
  public static let maxCount = 8

  /// A list that cannot be used, as a full sentence naming the item at fault.
  public struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
  }

  /// The endpoints of `text`, in order.
  /// - Parameters:
  ///   - text: one URL, or URLs separated by commas (spaces around a comma are allowed).
  ///   - source: where the text came from, as the message names it: `--endpoint`,
  ///     `AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT`, "the endpoint (from the environment or the AWS config)".
  /// - Throws: `EndpointList.Error` naming the bad item, its position and what was expected.
  public static func parse(_ text: String, source: String) throws(EndpointList.Error) -> [URL] {
    let example = "expected something like http://127.0.0.1:8600"
    let bytes = Array(text.utf8)
    // Split on bytes: a comma is never part of a UTF-8 multi-byte sequence.
    let items = bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map(trimmed)
    guard items.count <= maxCount else {
      throw Error(
        "\(source) lists \(items.count) endpoints; at most \(maxCount) are allowed (tried in order until one answers)."
      )
    }
    let single = items.count == 1
    var urls: [URL] = []
    var seen: Set<String> = []
    for (index, item) in items.enumerated() {
      let itemText = String(decoding: item, as: UTF8.self)
      let position = single ? "" : " (item \(index + 1) of \(items.count))"
      let named =
        single
        ? "\(source) \(SafeText.quoted(itemText))"
        : "\(source) lists \(SafeText.quoted(itemText))\(position), which"
      guard !item.isEmpty else {
        if single { throw Error("\(source) is empty; \(example).") }
        throw Error(
          "\(source) \(SafeText.quoted(text)) has an empty item\(position); expected http(s) URLs separated by single commas, like http://b1:8600,http://b2:8600."
        )
      }
      guard item.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
        throw Error(
          "\(named) contains a space, a control character or a non-ASCII character; expected an http(s) URL in printable ASCII (an international host name in its xn-- form), like http://127.0.0.1:8600."
        )
      }
      guard item.starts(with: Array("http://".utf8)) || item.starts(with: Array("https://".utf8)),
        let url = URL(string: itemText), let scheme = url.scheme, scheme == "http" || scheme == "https",
        let host = url.host, !host.isEmpty
      else {
        throw Error("\(named) is not an http(s) URL; \(example).")
      }
      let canonical = description(url)
      guard seen.insert(canonical).inserted else {
        throw Error("\(named) is listed twice; expected each endpoint once.")
      }
      urls.append(url)
    }
    return urls
  }

  /// An endpoint as messages name it: without trailing slashes.
  public static func description(_ url: URL) -> String {
    var text = url.absoluteString
    while text.hasSuffix("/") { text.removeLast() }
    return text
  }

  static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
    var slice = bytes
    while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
    while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
    return slice
  }
}
