import Foundation

/// Headless Chromium (Debian's `chromium`), for checking what an HTML report draws. It runs with
/// a throwaway profile and with name resolution and background services off, so a page can reach
/// nothing beyond the file it is given.
enum Chromium {
  static var path: String? {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
      if let found = LocalProcess.which(name) { return found }
    }
    return nil
  }

  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  static func run(_ extra: [String], file: String, fragment: String = "") throws -> String {
    guard let chromium = path else {
      throw Failure(description: "no chromium on PATH; `make test` installs Debian's chromium package")
    }
    let profile = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-chromium-\(UUID())")
      .path
    defer { try? FileManager.default.removeItem(atPath: profile) }
    let arguments =
      [
        "-k", "5", "90", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--user-data-dir=\(profile)", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-pings",
        "--disable-domain-reliability", "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars",
      ] + extra + ["file://" + file + fragment]
    let (status, stdout, stderr) = try runProgram("/usr/bin/timeout", arguments)
    guard status == 0 else {
      throw Failure(description: "chromium exited \(status): \(stderr.suffix(2000))")
    }
    return stdout
  }

  /// The page's DOM after its scripts ran.
  static func dom(_ file: String, fragment: String = "") throws -> String {
    try run(["--dump-dom"], file: file, fragment: fragment)
  }

  /// A PNG of the page's first `width`×`height` pixels.
  static func screenshot(_ file: String, to png: String, width: Int = 1400, height: Int = 900) throws {
    _ = try run(["--screenshot=\(png)", "--window-size=\(width),\(height)"], file: file)
  }

  /// Width and height from a PNG's IHDR chunk; nil if `data` is not a PNG.
  static func pngSize(_ data: Data) -> (width: Int, height: Int)? {
    let bytes = [UInt8](data.prefix(24))
    guard bytes.count == 24, bytes[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A],
      String(decoding: bytes[12..<16], as: UTF8.self) == "IHDR"
    else { return nil }
    func be(_ range: Range<Int>) -> Int { range.reduce(0) { $0 << 8 | Int(bytes[$1]) } }
    return (be(16..<20), be(20..<24))
  }
}

/// One timeline row of a rendered report, read back from the DOM.
struct ReportRow {
  var host: String
  var status: String
  var classes: String
  /// Milliseconds from the timeline's start, and the `left` percentage each is drawn at.
  var pushes: [(t: Int, left: Double)]
  var auth: (t: Int, left: Double)?
  var tasks: [(status: String, left: Double, width: Double)]
  var windows: [(left: Double, width: Double)]

  /// Every `.row` of a dumped DOM, in document order.
  static func parse(_ dom: String) -> [ReportRow] {
    let chunks = dom.components(separatedBy: "<div class=\"row ").dropFirst()
    return chunks.map { chunk in
      let end = chunk.range(of: "</div></div>").map { chunk[..<$0.lowerBound] } ?? Substring(chunk)
      func attribute(_ name: String, in text: Substring) -> String? {
        guard let start = text.range(of: "\(name)=\"") else { return nil }
        let rest = text[start.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
      }
      func number(_ text: String?) -> Double { Double(text ?? "") ?? .nan }
      func style(_ property: String, in text: Substring) -> Double {
        guard let styleText = attribute("style", in: text),
          let range = styleText.range(of: "\(property):")
        else { return .nan }
        let rest = styleText[range.upperBound...].drop { $0 == " " }
        return Double(rest.prefix { $0.isNumber || $0 == "." || $0 == "-" }) ?? .nan
      }
      func elements(_ tag: String, _ className: String) -> [Substring] {
        end.components(separatedBy: "<\(tag) class=\"\(className)").dropFirst().map { Substring($0) }
      }
      var row = ReportRow(
        host: attribute("data-host", in: end) ?? "", status: attribute("data-status", in: end) ?? "",
        classes: String(end.prefix { $0 != "\"" }), pushes: [], auth: nil, tasks: [], windows: [])
      for push in elements("i", "push\"") {
        row.pushes.append((Int(number(attribute("data-t", in: push))), style("left", in: push)))
      }
      if let auth = elements("i", "auth").first {
        row.auth = (Int(number(attribute("data-t", in: auth))), style("left", in: auth))
      }
      for task in elements("b", "task t-") {
        row.tasks.append(
          (String(task.prefix { $0 != "\"" }), style("left", in: task), style("width", in: task)))
      }
      for window in elements("i", "win\"") {
        row.windows.append((style("left", in: window), style("width", in: window)))
      }
      return row
    }
  }
}
