import Crypto
import Foundation
import InstanceConnect
import SixtyCore
import SixtyPlaybook

/// Turns an `aws-ec2` inventory into hosts: `DescribeInstances` with the file's filters (or a
/// fresh enough cached answer), then names, addresses, users and tags per instance.
public enum EC2Inventory {
  /// Instances for `source`, from the cache when it is younger than the file's `cache.ttl`.
  public static func instances(
    for source: EC2InventorySource, client: EC2Client, cacheDirectory: String?,
    readCache useCache: Bool = true,
    now: Date = Date(), pageSize: Int = 1000
  ) async throws(EC2Error) -> (instances: [EC2Instance], cached: Bool) {
    var filters = source.filters.map { (name: $0.name, values: $0.values) }
    if !filters.contains(where: { $0.name == "instance-state-name" }) {
      filters.append((name: "instance-state-name", values: source.states))
    }
    let cacheFile = cacheDirectory.map { $0 + "/ec2-" + cacheKey(source, client: client) + ".json" }
    if useCache, let ttl = source.cacheTTL, let cacheFile,
      let cached = readCache(cacheFile, ttl: ttl, now: now)
    {
      return (cached, true)
    }
    let found = try await client.describeInstances(filters: filters, pageSize: pageSize)
    if source.cacheTTL != nil, let cacheFile { writeCache(cacheFile, found, now: now) }
    return (found, false)
  }

  /// `$XDG_CACHE_HOME/sixty`, else `~/.cache/sixty`.
  public static func defaultCacheDirectory(
    environment: [String: String] = ProcessInfo.processInfo.environment
  )
    -> String
  {
    if let cache = environment["XDG_CACHE_HOME"], cache.hasPrefix("/") { return cache + "/sixty" }
    return (environment["HOME"] ?? NSHomeDirectory()) + "/.cache/sixty"
  }

  static func cacheKey(_ source: EC2InventorySource, client: EC2Client) -> String {
    var text = "\(client.region)|\(client.endpoint.absoluteString)|\(source.states.joined(separator: ","))"
    for filter in source.filters { text += "|\(filter.name)=\(filter.values.joined(separator: ","))" }
    return SHA256.hash(data: Data(text.utf8)).prefix(12).map { String(format: "%02x", $0) }.joined()
  }

  struct CacheFile: Codable {
    var fetched: Double
    var instances: [EC2Instance]
  }

  static func readCache(_ path: String, ttl: TimeSpan, now: Date) -> [EC2Instance]? {
    guard let data = FileManager.default.contents(atPath: path),
      let file = try? JSONDecoder().decode(CacheFile.self, from: data)
    else { return nil }
    let age = now.timeIntervalSince1970 - file.fetched
    return age >= 0 && age < Double(ttl.milliseconds) / 1000 ? file.instances : nil
  }

  static func writeCache(_ path: String, _ instances: [EC2Instance], now: Date) {
    let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
    try? FileManager.default.createDirectory(
      atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    guard
      let data = try? JSONEncoder().encode(
        CacheFile(fetched: now.timeIntervalSince1970, instances: instances))
    else { return }
    let temporary = path + ".\(getpid()).tmp"
    if FileManager.default.createFile(
      atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600])
    {
      _ = rename(temporary, path)
    }
  }

  /// Hosts for the instances, in instance-id order; problems (an instance with no usable
  /// address) come back as warnings naming the instance.
  public static func hosts(_ instances: [EC2Instance], source: EC2InventorySource, region: String) -> (
    [InventoryHost], [Diagnostic]
  ) {
    var diagnostics: [Diagnostic] = []
    let wanted = Set(source.states)
    let chosen = instances.filter { wanted.contains($0.state) }.sorted { $0.id < $1.id }
    var nameCount: [String: Int] = [:]
    for instance in chosen {
      if let name = instance.tags[source.nameTag], HostSelector.isName(name) {
        nameCount[name, default: 0] += 1
      }
    }
    var hosts: [InventoryHost] = []
    for instance in chosen {
      var name = instance.id
      if let tagged = instance.tags[source.nameTag], nameCount[tagged] == 1 { name = tagged }
      var address: String?
      for kind in source.hostnames where address == nil {
        switch kind {
        case .privateIP: address = instance.privateIP
        case .publicIP: address = instance.publicIP
        case .dns: address = instance.publicDNS
        case .privateDNS: address = instance.privateDNS
        }
      }
      // Addresses come from EC2 (and DNS names from whoever runs the VPC's resolver): anything
      // that is not a plain host name or IP literal is left out rather than passed to ssh.
      if let text = address, !SafeText.isHostAddress(text) {
        address = nil
      }
      guard let address else {
        diagnostics.append(
          .warning(
            "the instance \(instance.id) (\(name)) has no \(source.hostnames.map(\.rawValue).joined(separator: " or ")) address, so it is left out; change 'hostnames' to reach it another way.",
            at: source.location))
        continue
      }
      var host = InventoryHost(
        name: name, address: address, port: source.port, user: nil, instanceID: instance.id,
        zone: instance.zone,
        tags: instance.tags)
      var facts: [String: Value] = [
        "instance_id": .string(instance.id), "state": .string(instance.state), "region": .string(region),
        "security_groups": .list(instance.securityGroups.map(Value.string)),
      ]
      for (key, value) in [
        ("private_ip", instance.privateIP), ("public_ip", instance.publicIP),
        ("private_dns", instance.privateDNS),
        ("public_dns", instance.publicDNS), ("vpc_id", instance.vpcID), ("subnet_id", instance.subnetID),
        ("platform", instance.platform), ("zone", instance.zone),
      ] {
        if let value { facts[key] = .string(value) }
      }
      host.vars["ec2"] = .map(facts)
      if let tagged = instance.tags[source.userTag], !tagged.isEmpty, !isUser(tagged) {
        diagnostics.append(
          .warning(
            "the instance \(instance.id) (\(name)) has the tag \(source.userTag)=\(SafeText.quoted(tagged)), which is not a user name (up to 32 ASCII letters, digits, '.', '_', '-', '@', not starting with '-'); using the inventory's users instead.",
            at: source.location))
      }
      if let tagged = instance.tags[source.userTag], isUser(tagged) {
        host.user = tagged
      } else if let rule = source.userRules.first(where: { Inventory.matchesTags($0.match, host) }) {
        host.user = rule.user
      } else {
        host.user = source.user
      }
      if let jump = source.proxyJump {
        host.sshOptions = ["ProxyJump=\(jump)"]
        host.connectionPath = "jump:\(jump)"
      } else if let endpoint = source.instanceConnectEndpoint {
        // ssh hands ProxyCommand to a shell: only plain words go into it.
        let words = [region, instance.id, endpoint]
        guard words.allSatisfy(Self.isPlainWord) else {
          diagnostics.append(
            .warning(
              "the instance \(SafeText.quoted(instance.id)) (\(name)) cannot be reached through the endpoint \(SafeText.quoted(endpoint)) in region \(SafeText.quoted(region)): expected an instance id, an endpoint id and a region made of letters, digits and '-'; it is left out.",
              at: source.location))
          continue
        }
        host.sshOptions = [
          "ProxyCommand=aws ec2-instance-connect open-tunnel --region \(region) --instance-id \(instance.id) --instance-connect-endpoint-id \(endpoint) --remote-port %p"
        ]
        host.connectionPath = endpoint
        host.connectionLimit = source.endpointConnections
      }
      hosts.append(host)
    }
    return (hosts, diagnostics)
  }

  /// Letters, digits and '-' only: safe in a shell command and in ssh's `%` expansion.
  static func isPlainWord(_ text: String) -> Bool {
    !text.isEmpty && text.utf8.first != UInt8(ascii: "-")
      && text.utf8.allSatisfy { SafeText.isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
  }

  /// The same rule as for inventory users: what ssh's -l and Instance Connect accept.
  static func isUser(_ user: String) -> Bool { SafeText.isUserName(user) }

}
