import Foundation
import SixtyAgentCore
import SixtyCore
import SixtyPlaybook

/// One thing preflight found about a target.
public struct PreflightFinding: Sendable, Hashable, CustomStringConvertible {
  public enum Severity: String, Sendable, Hashable {
    /// The target cannot work as things are (exit 3).
    case error
    /// It works, but should be fixed (e.g. port 22 open to the world).
    case warning
    case note
  }
  public var host: String
  public var instanceID: String?
  public var severity: Severity
  public var message: String

  public var description: String {
    "\(host)\(instanceID.map { " (\($0))" } ?? ""): \(severity.rawValue): \(message)"
  }
}

/// Where Sixty's SSH connections to the targets come from.
public struct PreflightSources: Sendable {
  /// The runner's own addresses (for direct connections).
  public var runner: [CIDR]
  /// A bastion's addresses (for proxy_jump connections).
  public var bastion: [CIDR]
  /// Security groups whose members may connect (a bastion's or an Instance Connect Endpoint's).
  public var groups: [String]
  /// The region's EC2_INSTANCE_CONNECT prefixes, from ip-ranges.json.
  public var instanceConnectPrefixes: [String: [CIDR]]

  public init(
    runner: [CIDR] = [], bastion: [CIDR] = [], groups: [String] = [],
    instanceConnectPrefixes: [String: [CIDR]] = [:]
  ) {
    self.runner = runner
    self.bastion = bastion
    self.groups = groups
    self.instanceConnectPrefixes = instanceConnectPrefixes
  }

  /// EC2_INSTANCE_CONNECT prefixes per region from AWS's ip-ranges.json.
  public static func instanceConnectPrefixes(ipRangesJSON data: Data) throws -> [String: [CIDR]] {
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw EC2Error("the ip-ranges file is not a JSON object; expected AWS's ip-ranges.json.")
    }
    var result: [String: [CIDR]] = [:]
    for entry in object["prefixes"] as? [[String: Any]] ?? []
    where entry["service"] as? String == "EC2_INSTANCE_CONNECT" {
      if let region = entry["region"] as? String, let text = entry["ip_prefix"] as? String,
        let cidr = CIDR(text)
      {
        result[region, default: []].append(cidr)
      }
    }
    for entry in object["ipv6_prefixes"] as? [[String: Any]] ?? []
    where entry["service"] as? String == "EC2_INSTANCE_CONNECT" {
      if let region = entry["region"] as? String, let text = entry["ipv6_prefix"] as? String,
        let cidr = CIDR(text)
      {
        result[region, default: []].append(cidr)
      }
    }
    return result
  }
}

/// Read-only checks of EC2 targets before anything runs: instance state, the security-group
/// rule for SSH from where Sixty connects, world-open SSH, and the OS user.
public enum Preflight {
  static let usualUsers: Set<String> = [
    "ec2-user", "ubuntu", "admin", "debian", "centos", "fedora", "rocky", "almalinux", "bitnami", "core",
    "opc",
    "arch", "clear", "alpine",
  ]

  /// Does network `outer` contain all of `inner`?
  static func covers(_ outer: CIDR, _ inner: CIDR) -> Bool {
    guard outer.bytes.count == inner.bytes.count, outer.prefix <= inner.prefix else { return false }
    let address =
      inner.bytes.count == 4
      ? inner.bytes.map(String.init).joined(separator: ".")
      : String(inner.description.split(separator: "/")[0])
    return outer.contains(address)
  }

  /// Checks `hosts` (each with the user it will log in as) against their security groups.
  public static func check(
    hosts: [(host: InventoryHost, user: String)], groups: [String: SecurityGroup], sources: PreflightSources
  ) -> [PreflightFinding] {
    var findings: [PreflightFinding] = []
    for (host, user) in hosts {
      func add(_ severity: PreflightFinding.Severity, _ message: String) {
        findings.append(
          PreflightFinding(host: host.name, instanceID: host.instanceID, severity: severity, message: message)
        )
      }
      guard case .map(let ec2)? = host.vars["ec2"] else {
        add(.note, "not an EC2 instance of an aws-ec2 inventory; nothing to check.")
        continue
      }
      let state = ec2["state"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? "unknown"
      if state != "running" {
        add(.error, "the instance is \(state), not running.")
      }
      let region = ec2["region"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? ""
      let groupIDs: [String] =
        ec2["security_groups"].flatMap {
          if case .list(let items) = $0 {
            items.compactMap { if case .string(let s) = $0 { s } else { nil } }
          } else {
            nil
          }
        } ?? []
      // Where this host's connections come from.
      var from: [(CIDR, String)] = []
      let path: String
      if let jump = host.sshOptions.first(where: { $0.hasPrefix("ProxyJump=") }) {
        path = "the bastion \(jump.dropFirst("ProxyJump=".count))"
        from = sources.bastion.map { ($0, "the bastion") }
      } else if host.connectionLimit != nil {
        path = "the Instance Connect Endpoint \(host.connectionPath ?? "")"
      } else {
        path = "this runner"
        from = sources.runner.map { ($0, "this runner") }
      }
      from += (sources.instanceConnectPrefixes[region] ?? []).map {
        ($0, "EC2_INSTANCE_CONNECT in \(region)")
      }
      var allowedBy: [String] = []
      var worldOpen: [String] = []
      var unknown: [String] = []
      for id in groupIDs {
        guard let group = groups[id] else {
          unknown.append(id)
          continue
        }
        for rule in group.ingress where rule.allowsTCP(host.port) {
          for text in rule.ipv4 + rule.ipv6 {
            guard let cidr = CIDR(text) else { continue }
            if cidr.prefix == 0 { worldOpen.append("\(text) in \(id)") }
            if let match = from.first(where: { covers(cidr, $0.0) }) {
              allowedBy.append("\(text) in \(id) (\(match.1) \(match.0))")
            }
          }
          for ref in rule.groups where sources.groups.contains(ref) {
            allowedBy.append("members of \(ref) in \(id)")
          }
        }
      }
      if !unknown.isEmpty {
        add(
          .error,
          "its security group\(unknown.count == 1 ? "" : "s") \(unknown.joined(separator: ", ")) could not be read."
        )
      }
      if groupIDs.isEmpty {
        add(.error, "it has no security groups, so nothing allows TCP \(host.port).")
      } else if allowedBy.isEmpty {
        var wanted = from.map { "\($0.0)" }
        wanted += sources.groups.map { "members of \($0)" }
        let what =
          wanted.isEmpty
          ? "from \(path) (its address is unknown: pass --from CIDR, --bastion CIDR or --source-group sg-…)"
          : "from \(path) (\(wanted.prefix(4).joined(separator: ", "))\(wanted.count > 4 ? ", …" : ""))"
        add(
          .error,
          "no inbound rule of \(groupIDs.joined(separator: ", ")) allows TCP \(host.port) \(what); add one for that source."
        )
      }
      if !worldOpen.isEmpty {
        add(
          .warning,
          "TCP \(host.port) is open to the whole internet (\(worldOpen.joined(separator: ", "))); with keys pushed just in time it only needs \(path)."
        )
      }
      // The OS user.
      let platform = ec2["platform"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? ""
      if platform.lowercased().contains("windows") {
        add(.error, "it runs \(platform), which has no SSH server for Instance Connect.")
      }
      if user == "root" {
        add(
          .warning,
          "it logs in as root, which EC2 images refuse by default; use the image's user (ec2-user, ubuntu, …)."
        )
      } else if !usualUsers.contains(user) && host.tags["sixty:user"] != user {
        add(
          .note,
          "'\(user)' is not a usual EC2 user (ec2-user, ubuntu, admin, …); set the sixty:user tag on the instance if it is meant."
        )
      }
    }
    return findings
  }

  /// This machine's interface addresses (loopback included), for `--from` when none is given.
  public static func localAddresses() -> [CIDR] {
    var result: [CIDR] = []
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0, let first = list else { return [] }
    defer { freeifaddrs(list) }
    var cursor: UnsafeMutablePointer<ifaddrs>? = first
    while let entry = cursor {
      defer { cursor = entry.pointee.ifa_next }
      guard let address = entry.pointee.ifa_addr else { continue }
      var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
      switch Int32(address.pointee.sa_family) {
      case AF_INET:
        address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
          var addr = sin.pointee.sin_addr
          inet_ntop(AF_INET, &addr, &buffer, socklen_t(buffer.count))
        }
      case AF_INET6:
        address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
          var addr = sin.pointee.sin6_addr
          inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count))
        }
      default: continue
      }
      let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      if !text.hasPrefix("fe80"), let cidr = CIDR(text) { result.append(cidr) }
    }
    return result
  }
}
