import Foundation

/// Locates copied test resources (`resources: [.copy("Resources")]`) on every platform layout.
enum TestResources {
  static func url(_ name: String) -> URL {
    let base = Bundle.module.resourceURL ?? Bundle.module.bundleURL
    for candidate in [base.appendingPathComponent(name), base.appendingPathComponent("Resources/\(name)")]
    where FileManager.default.fileExists(atPath: candidate.path) {
      return candidate
    }
    return base.appendingPathComponent(name)
  }
}
