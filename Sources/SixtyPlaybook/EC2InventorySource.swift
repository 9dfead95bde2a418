import SixtyCore

/// An inventory whose hosts come from EC2 `DescribeInstances` (`source: aws-ec2`).
///
/// ```yaml
/// source: aws-ec2
/// region: eu-west-1
/// filters: {"tag:env": prod, instance-state-name: running, vpc-id: vpc-0abc}
/// hostnames: [private-ip, public-ip]      # the first an instance has is its address
/// user: ec2-user                           # default OS user; tag sixty:user overrides per host
/// users: [{match: "os=ubuntu", user: ubuntu}]
/// cache: {ttl: 5m}
/// groups: {web: {match: role=web}}
/// ```
public struct EC2InventorySource: Sendable, Hashable {
  public enum Hostname: String, Sendable, Hashable, CaseIterable {
    case privateIP = "private-ip"
    case publicIP = "public-ip"
    case dns
    case privateDNS = "private-dns"
  }

  public struct Filter: Sendable, Hashable {
    public var name: String
    public var values: [String]
    public init(name: String, values: [String]) {
      self.name = name
      self.values = values
    }
  }

  public struct UserRule: Sendable, Hashable {
    public var match: HostSelector
    public var user: String
  }

  public var region: String?
  /// An explicit EC2 endpoint (tests, VPC endpoints); else `AWS_ENDPOINT_URL_EC2` or AWS's own.
  public var endpoint: String?
  public var filters: [Filter] = []
  /// Instance states to include; running only unless the file says otherwise.
  public var states: [String] = ["running"]
  public var hostnames: [Hostname] = [.privateIP]
  /// The tag whose value names the host (instances without it, or with a duplicate, are named by id).
  public var nameTag = "Name"
  public var user = "ec2-user"
  public var userTag = "sixty:user"
  public var userRules: [UserRule] = []
  public var port = 22
  public var cacheTTL: TimeSpan?
  /// Connect through this ssh ProxyJump (`[user@]bastion[:port]`).
  public var proxyJump: String?
  /// Connect through an EC2 Instance Connect Endpoint (`aws ec2-instance-connect open-tunnel`).
  public var instanceConnectEndpoint: String?
  /// Connections at once through the endpoint (AWS allows 20).
  public var endpointConnections = 20
  public var location: SourceLocation?

  public init() {}

  static let keys = [
    "source", "region", "endpoint", "filters", "states", "hostnames", "name_tag", "user", "user_tag", "users",
    "port", "cache", "proxy_jump", "instance_connect_endpoint", "vars", "groups",
  ]

  /// Reads the EC2-specific keys of an inventory mapping.
  static func parse(_ root: YAMLNode, reader: inout NodeReader) -> EC2InventorySource {
    var source = EC2InventorySource()
    source.location = root["source"]?.location
    for pair in root.pairs ?? [] {
      let what = "'\(pair.key)' of the aws-ec2 inventory"
      switch pair.key {
      case "region":
        source.region = reader.string(
          pair.value, what,
          where: { $0.range(of: #"^[a-z]{2}(-[a-z]+)+-\d+$"#, options: .regularExpression) != nil }
        ) { "'\($0)' is not an AWS region; expected something like eu-west-1." }
      case "endpoint":
        source.endpoint = reader.string(
          pair.value, what, where: { $0.hasPrefix("http://") || $0.hasPrefix("https://") }
        ) { "'\($0)' is not an http(s) URL; expected something like https://ec2.eu-west-1.amazonaws.com." }
      case "filters":
        guard let entries = reader.mapping(pair.value, what) else { continue }
        for entry in entries {
          let values = reader.stringList(entry.value, "the filter '\(entry.key)'")?.map(\.0) ?? []
          if values.isEmpty { continue }
          source.filters.append(Filter(name: entry.key, values: values))
        }
      case "states":
        let allowed = ["pending", "running", "shutting-down", "terminated", "stopping", "stopped"]
        var states: [String] = []
        for (state, location) in reader.stringList(pair.value, what) ?? [] {
          if allowed.contains(state) {
            states.append(state)
          } else {
            reader.error(
              "'\(state)' is not an instance state; expected one of: \(allowed.joined(separator: ", ")).",
              at: location)
          }
        }
        if !states.isEmpty { source.states = states }
      case "hostnames":
        var order: [Hostname] = []
        for (text, location) in reader.stringList(pair.value, what) ?? [] {
          if let value = Hostname(rawValue: text) {
            order.append(value)
          } else {
            reader.error(
              "'\(text)' is not a hostname kind\(Suggestion.hint(for: text, in: Hostname.allCases.map(\.rawValue))); expected private-ip, public-ip, dns or private-dns.",
              at: location)
          }
        }
        if !order.isEmpty { source.hostnames = order }
      case "name_tag": source.nameTag = reader.string(pair.value, what) ?? source.nameTag
      case "user":
        if let user = reader.string(pair.value, what),
          InventoryParser.checkUser(user, pair.value.location, &reader)
        {
          source.user = user
        }
      case "user_tag": source.userTag = reader.string(pair.value, what) ?? source.userTag
      case "users":
        guard let items = reader.sequence(pair.value, what) else { continue }
        for item in items {
          guard let fields = reader.mapping(item, "a rule of 'users'", allowed: ["match", "user"]) else {
            continue
          }
          var selector: HostSelector?
          var user: String?
          for field in fields {
            if field.key == "match", let text = reader.string(field.value, "'match' of a users rule") {
              do {
                selector = try HostSelector(parsing: text)
              } catch {
                reader.error(error.message, at: field.value.location)
              }
            } else if field.key == "user", let text = reader.string(field.value, "'user' of a users rule"),
              InventoryParser.checkUser(text, field.value.location, &reader)
            {
              user = text
            }
          }
          if let selector, let user {
            source.userRules.append(UserRule(match: selector, user: user))
          } else if !fields.isEmpty && (selector == nil) != (user == nil) {
            reader.error("a rule of 'users' needs both 'match' and 'user'.", at: item.location)
          }
        }
      case "port": source.port = reader.int(pair.value, what, range: 1...65535) ?? 22
      case "cache":
        guard let fields = reader.mapping(pair.value, what, allowed: ["ttl"]) else { continue }
        for field in fields { source.cacheTTL = reader.timeSpan(field.value, "'cache.ttl'") }
      case "proxy_jump":
        source.proxyJump = reader.string(pair.value, what, where: Self.isJumpList) {
          "the proxy_jump \(SafeText.quoted($0)) is not a list of [user@]host[:port] hops; expected something like ops@bastion.example.com:22, with hosts and users made of ASCII letters, digits, '.', '-', '_'."
        }
      case "instance_connect_endpoint":
        guard let fields = reader.mapping(pair.value, what, allowed: ["id", "max_connections"]) else {
          continue
        }
        for field in fields {
          if field.key == "id" {
            source.instanceConnectEndpoint = reader.string(
              field.value, "'instance_connect_endpoint.id'",
              where: { $0.range(of: #"^eice-[0-9a-f]{8,}$"#, options: .regularExpression) != nil }
            ) { "'\($0)' is not an Instance Connect Endpoint id; expected eice- and hex digits." }
          } else if field.key == "max_connections" {
            source.endpointConnections =
              reader.int(field.value, "'instance_connect_endpoint.max_connections'", range: 1...20) ?? 20
          }
        }
      default: break
      }
    }
    if source.proxyJump != nil && source.instanceConnectEndpoint != nil {
      reader.error(
        "the inventory sets both proxy_jump and instance_connect_endpoint; expected one way to reach the instances.",
        at: root["proxy_jump"]?.location)
    }
    return source
  }
}

extension EC2InventorySource {
  /// `[user@]host[:port]` hops separated by commas, as ssh's ProxyJump takes them, with users
  /// and hosts that no option parser or shell can misread.
  public static func isJumpList(_ text: String) -> Bool {
    let hops = text.split(separator: ",", omittingEmptySubsequences: false)
    return !hops.isEmpty
      && hops.allSatisfy { hop in
        var rest = Substring(hop)
        if let at = rest.lastIndex(of: "@") {
          guard SafeText.isUserName(String(rest[..<at])) else { return false }
          rest = rest[rest.index(after: at)...]
        }
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]"),
          !rest.hasPrefix("[") || rest[..<colon].hasSuffix("]")
        {
          guard let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
            return false
          }
          rest = rest[..<colon]
        }
        return SafeText.isHostAddress(String(rest))
      }
  }
}
