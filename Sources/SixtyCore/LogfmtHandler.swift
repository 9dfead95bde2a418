import Foundation
import Logging

/// Structured log lines (logfmt) on standard error:
/// `time=2026-11-25T03:00:00.012Z level=info msg="run finished" job=nightly run=42 exit=0`.
public struct LogfmtHandler: LogHandler {
  public var metadata: Logger.Metadata = [:]
  public var logLevel: Logger.Level = .info
  let label: String
  let sink: @Sendable (String) -> Void

  public init(label: String, sink: @escaping @Sendable (String) -> Void = LogfmtHandler.standardError) {
    self.label = label
    self.sink = sink
  }

  static let lock = NSLock()
  public static func standardError(_ line: String) {
    lock.withLock { FileHandle.standardError.write(Data(line.utf8)) }
  }

  public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  public func log(event: LogEvent) {
    sink(
      Self.format(
        level: event.level, message: event.message.description,
        metadata: metadata.merging(event.metadata ?? [:]) { $1 }))
  }

  static func format(level: Logger.Level, message: String, metadata: Logger.Metadata, time: Date = Date())
    -> String
  {
    let iso = ISO8601DateFormatter()
    iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    var line = "time=\(iso.string(from: time)) level=\(level.rawValue) msg=\(quote(message))"
    for key in metadata.keys.sorted() {
      line += " \(key)=\(quote(metadata[key]!.description))"
    }
    return line + "\n"
  }

  /// The longest value a log line carries, in Unicode scalars; the rest is cut with a count.
  static let valueLimit = 2048

  /// A value as logfmt writes it: bare when safe, else quoted with escapes (never a raw newline,
  /// a terminal control, a bidi override or a line separator), and cut past `valueLimit`.
  static func quote(_ whole: String) -> String {
    var value = whole
    let scalarCount = whole.unicodeScalars.count
    if scalarCount > valueLimit {
      value = String(String.UnicodeScalarView(whole.unicodeScalars.prefix(valueLimit)))
      value += "…[truncated, \(scalarCount - valueLimit) more characters]"
    }
    let safe =
      !value.isEmpty
      && value.unicodeScalars.allSatisfy {
        $0.value > 0x20 && $0.value < 0x7F && $0 != "\"" && $0 != "=" && $0 != "\\"
      }
    if safe { return value }
    var out = "\""
    for scalar in value.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if SafeText.needsEscape(scalar) {
          out += String(format: "\\u%04x", scalar.value)
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out + "\""
  }
}
