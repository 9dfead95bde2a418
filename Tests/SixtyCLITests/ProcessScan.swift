import Foundation

/// The machine's processes as /proc shows them (read only; nothing is signalled).
enum ProcessScan {
  /// "PID: COMMAND LINE" of every process whose command line mentions `text`.
  static func processes(mentioning text: String) -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry in
      guard Int(entry) != nil, let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
      else { return nil }
      let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
      return line.contains(text) ? "\(entry): \(line)" : nil
    }
  }
}
