import Foundation
import SixtyCore

/// The AWS shared files as the AWS CLI reads them: `~/.aws/config` (`[default]`,
/// `[profile NAME]`, `[sso-session NAME]`) and `~/.aws/credentials` (`[NAME]`), whose keys win
/// over the config file's for the same profile.
struct SharedConfig: Sendable {
  var credentialsFile: String
  var configFile: String
  /// Profile name → its keys (lowercased), both files merged.
  var profiles: [String: [String: String]] = [:]
  /// `[sso-session NAME]` sections.
  var ssoSessions: [String: [String: String]] = [:]
  /// `[services NAME]` sections: `sts.endpoint_url` and the like.
  var services: [String: [String: String]] = [:]

  init(credentialsFile: String, configFile: String) {
    self.credentialsFile = credentialsFile
    self.configFile = configFile
    if let config = INIFile.load(configFile) {
      for (section, values) in config.sections {
        if section == "default" {
          profiles["default", default: [:]].merge(values) { _, new in new }
        } else if section.hasPrefix("profile ") {
          profiles[String(section.dropFirst("profile ".count)), default: [:]].merge(values) { _, new in new }
        } else if section.hasPrefix("sso-session ") {
          ssoSessions[String(section.dropFirst("sso-session ".count))] = values
        } else if section.hasPrefix("services ") {
          services[String(section.dropFirst("services ".count))] = values
        }
      }
    }
    if let credentials = INIFile.load(credentialsFile) {
      for (section, values) in credentials.sections {
        profiles[section, default: [:]].merge(values) { _, new in new }
      }
    }
  }

  /// Both files, as errors name them (the config file first, as the AWS CLI does).
  var files: [String] { [configFile, credentialsFile] }

  /// The endpoint a profile sets for one service (`sts`, `sso`, `ec2`, `ec2_instance_connect`):
  /// its services section's, else its own `endpoint_url`.
  func endpoint(profile: String, service: String) -> String? {
    guard let values = profiles[profile] else { return nil }
    if let name = values["services"], let value = services[name]?["\(service).endpoint_url"], !value.isEmpty {
      return value
    }
    return values["endpoint_url"].flatMap { $0.isEmpty ? nil : $0 }
  }

  /// The profile as errors name it: quoted and escaped (a name from the environment or a file is
  /// hostile).
  static func name(_ profile: String) -> String { SafeText.quoted(profile, limit: 64) }

  /// Where a profile's keys are written, for error messages.
  var location: String { "\(configFile) or \(credentialsFile)" }
}

/// A tolerant INI reader for the AWS shared files (`[section]`, `key = value`, `#`/`;` comments,
/// indented lines under `key =` for nested settings). At most 1 MiB is read.
struct INIFile {
  var sections: [String: [String: String]] = [:]

  static let maxBytes = 1 << 20

  static func load(_ path: String) -> INIFile? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    guard let data = try? handle.read(upToCount: maxBytes) else { return nil }
    return INIFile(text: String(decoding: data, as: UTF8.self))
  }

  init(text: String) {
    var current: String?
    var lastKey: String?
    for raw in text.split(whereSeparator: \.isNewline) {
      let nested = raw.first == " " || raw.first == "\t"
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
      if line.hasPrefix("[") && line.hasSuffix("]") {
        let name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
        let section = name.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        current = section
        lastKey = nil
        if sections[section] == nil { sections[section] = [:] }
        continue
      }
      guard let section = current, let eq = line.firstIndex(of: "=") else { continue }
      let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
      var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
      if let hash = value.range(of: " #") ?? value.range(of: " ;") {
        value = String(value[..<hash.lowerBound]).trimmingCharacters(in: .whitespaces)
      }
      if nested, let parent = lastKey, sections[section]?[parent]?.isEmpty == true {
        // `sts =\n  endpoint_url = …` (a services section): kept as `sts.endpoint_url`.
        sections[section]?["\(parent).\(key)"] = value
        continue
      }
      sections[section]?[key] = value
      lastKey = key
    }
  }

  func section(_ name: String) -> [String: String]? { sections[name] }
}
