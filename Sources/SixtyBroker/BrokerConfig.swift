import Foundation
import SixtyAgentCore
import SixtyCore
import SixtyPostgres

/// `broker.yml`: where to listen, who may push keys for which hosts and users, and the host registry.
///
/// ```yaml
/// listen: 127.0.0.1:8600
/// region: us-east-1                  # only requests signed for this region (default us-east-1)
/// max_connections: 512
/// max_connections_per_source: 32     # one address (an IPv6 /64); below max_connections
/// header_timeout: 5s                 # a request head must arrive within this
/// key_ttl: 60s
/// max_clock_skew: 5m
/// signing_key_file: /var/lib/sixty/broker-signing.key   # created (0600) when missing
/// audit_log: /var/log/sixty/audit.jsonl
/// replay_cache: /var/lib/sixty/replays  # default: the audit log's path + ".replays"
/// # or, for replicas sharing one database (keys, replay cache and audit chain there):
/// store: postgresql://sixty@db.example.com:5432/sixty?sslmode=verify-full
/// # store: {url: postgresql://…, password_file: /run/secrets/db-password}  # else $PGPASSWORD
/// certificates:                     # also an SSH certificate authority (SignSSHPublicKey)
///   ca_key_file: /var/lib/sixty/ca.key          # created (Ed25519, 0600) when missing
///   previous_ca_key_files: [/var/lib/sixty/ca-2025.pub]  # still trusted during a rotation
///   revoked_keys_file: /etc/ssh/sixty-revoked.krl       # KRL for sshd's RevokedKeys
///   prefer: true                     # tell runners to log in with certificates by default
/// principals:
///   deploy-bot:
///     access_key_id: AKIAEXAMPLEDEPLOY01
///     secret_env: SIXTY_DEPLOY_SECRET  # or secret: "…"
///     hosts: [role=web]               # selectors over the registry, or instance ids
///     users: [ops]                    # or ["*"]
///     rate: {per_second: 20, burst: 40}
/// groups:
///   lab: {allowed_sources: [127.0.0.0/8]}
/// hosts:
///   i-0000000000000001: {name: web-1, tags: {role: web}, group: lab, token_env: SIXTY_AGENT_TOKEN_WEB1}
/// ```
public struct BrokerConfig: Sendable {
  public struct Principal: Sendable {
    public var name: String
    public var accessKeyID: String
    public var secret: String
    public var hosts: HostSelector
    public var users: [String]
    public var rate: Double
    public var burst: Int

    public func allows(user: String) -> Bool { users.contains("*") || users.contains(user) }
  }

  public struct RegisteredHost: Sendable {
    public var instanceID: String
    public var name: String
    public var zone: String?
    public var tags: [String: String]
    public var token: String
    public var allowedSources: [CIDR]
  }

  /// `certificates:`: the broker as an SSH certificate authority.
  public struct Certificates: Sendable, Equatable {
    public var caKeyFile: String
    public var previousCAKeyFiles: [String] = []
    public var revokedKeysFile: String?
    /// Whether runners should log in with certificates when their policy does not say.
    public var prefer = false
    public init(caKeyFile: String) { self.caKeyFile = caKeyFile }
  }

  public var certificates: Certificates?
  public var host: String = "127.0.0.1"
  public var port: Int = 8600
  /// The only region requests may be signed for. Not set in `broker.yml`: `us-east-1` (what the
  /// AWS CLI and SDKs sign for when told nothing), and `regionIsDefault` says so.
  public var region: String = BrokerConfig.defaultRegion
  public var regionIsDefault = true
  public static let defaultRegion = "us-east-1"
  public var keyTTL: TimeSpan = .seconds(60)
  public var maxClockSkew: TimeSpan = .minutes(5)
  public var signingKeyFile: String?
  public var auditLog: String?
  /// Where accepted signatures are kept across restarts; nil: `auditLog` + ".replays", or memory
  /// only when there is no audit log either (see `replayCachePath`).
  public var replayCache: String?
  /// `store`: the PostgreSQL database shared by replicas (the URL as written, without reading
  /// any password file yet), where it was written, and `password_file`.
  public var store: String?
  public var storeOrigin: String = "broker.yml"
  public var storePasswordFile: String?
  public var maxBodyBytes: Int = 16 * 1024
  public var maxConnections: Int = 512
  /// How many of `maxConnections` one source address (an IPv6 /64) may hold; connections over
  /// it are closed at once. Always below `maxConnections`, so one source cannot take them all:
  /// by default 32, or half of `maxConnections` when that is smaller.
  public var maxConnectionsPerSource: Int = 32
  /// How long a connection may stay open between requests on a kept-alive connection.
  public var idleTimeout: TimeSpan = .seconds(30)
  /// How long a request head may take to arrive in full: from the connection's accept, or on a
  /// kept-alive connection from the first byte of the next request.
  public var headerTimeout: TimeSpan = .seconds(5)
  /// How long reading one request's body may take once its head has arrived.
  public var bodyTimeout: TimeSpan = .seconds(10)
  public var principals: [Principal] = []
  public var hosts: [RegisteredHost] = []
  /// What the file holds inline rather than through `secret_env`/`token_env`, as "the secret of
  /// principal 'deploy'": such a file must be readable by its owner only.
  public internal(set) var inlineSecrets: [String] = []

  public init() {}

  /// The replay cache file: `replay_cache`, else next to the audit log, else none (memory only).
  public var replayCachePath: String? { replayCache ?? auditLog.map { $0 + ".replays" } }

  /// The principal with exactly this access key id, compared as bytes (`String` equality would
  /// let a Kelvin sign stand for "K").
  public func principal(accessKeyID: String) -> Principal? {
    principals.first { $0.accessKeyID.utf8.elementsEqual(accessKeyID.utf8) }
  }
  /// The registered host with exactly this instance id, compared as bytes.
  public func host(instanceID: String) -> RegisteredHost? {
    hosts.first { $0.instanceID.utf8.elementsEqual(instanceID.utf8) }
  }

  /// Whether `selector` picks every host that could have `instanceID`, whatever its name and
  /// tags: then a principal holding it may learn that no such instance is registered. (An
  /// alternative made only of `all` and names or globs matching the id, none negated.)
  public static func coversAnyHost(_ selector: HostSelector, instanceID: String) -> Bool {
    selector.alternatives.contains { clauses in
      clauses.allSatisfy { clause in
        guard !clause.negated else { return false }
        switch clause.term {
        case .all: return true
        case .name(let name): return Glob.matches(name, instanceID)
        case .tag: return false
        }
      }
    }
  }

  /// Whether `selector` (ids, names, `tag=value`, globs) picks `host`.
  public static func matches(_ selector: HostSelector, _ host: RegisteredHost) -> Bool {
    selector.matches(tags: host.tags) { Glob.matches($0, host.instanceID) || Glob.matches($0, host.name) }
  }

  /// Loads and checks `broker.yml`; secrets named by `secret_env`/`token_env` are read from `environment`.
  public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment)
    -> (BrokerConfig?, [Diagnostic])
  {
    NodeReader.read(
      YAMLLoader.load(path: path), empty: .error("the broker configuration '\(path)' is empty.", at: nil)
    ) { root, reader in
      let config = parse(root, environment: environment, reader: &reader)
      if let problem = exposedSecrets(path: path, config.inlineSecrets) {
        reader.error(problem, at: nil)
      }
      return config
    }
  }

  /// Why the file at `path`, holding `inlineSecrets`, may not be used: it is readable by its
  /// group or others (as ssh refuses such a private key); nil when it is not, or holds none.
  static func exposedSecrets(path: String, _ inlineSecrets: [String]) -> String? {
    guard let first = inlineSecrets.first else { return nil }
    var info = stat()
    guard stat(path, &info) == 0, info.st_mode & 0o044 != 0 else { return nil }
    let mode = String(info.st_mode & 0o777, radix: 8)
    let more = inlineSecrets.count > 1 ? " and \(inlineSecrets.count - 1) more" : ""
    return
      "the broker configuration \(path) holds secrets inline (\(first)\(more)) and is readable by others (mode 0\(mode)); chmod 600 it or use secret_env/token_env."
  }

  static func parseCertificates(_ node: YAMLNode, reader: inout NodeReader) -> Certificates? {
    guard
      let fields = reader.mapping(
        node, "'certificates'",
        allowed: ["ca_key_file", "previous_ca_key_files", "revoked_keys_file", "prefer"])
    else { return nil }
    var keyFile: String?
    var previous: [String] = []
    var revoked: String?
    var prefer = false
    for field in fields {
      switch field.key {
      case "ca_key_file": keyFile = reader.string(field.value, "'ca_key_file' of 'certificates'")
      case "previous_ca_key_files":
        guard case .sequence(let items) = field.value.content else {
          reader.error(
            "'previous_ca_key_files' of 'certificates' must be a list of key files, found \(field.value.kindDescription).",
            at: field.value.location)
          continue
        }
        for item in items {
          if let path = reader.string(item, "each of 'previous_ca_key_files'") { previous.append(path) }
        }
      case "revoked_keys_file": revoked = reader.string(field.value, "'revoked_keys_file' of 'certificates'")
      default: prefer = reader.bool(field.value, "'prefer' of 'certificates'") ?? false
      }
    }
    for (label, path) in [("ca_key_file", keyFile), ("revoked_keys_file", revoked)] {
      if let path, path.isEmpty || path.utf8.contains(0) {
        reader.error("'\(label)' of 'certificates' is empty; expected the path of a file.", at: node.location)
        return nil
      }
    }
    guard let keyFile else {
      reader.error(
        "'certificates' has no 'ca_key_file'; expected the path of the certificate authority's private key (created when missing).",
        at: node.location)
      return nil
    }
    var settings = Certificates(caKeyFile: keyFile)
    settings.previousCAKeyFiles = previous
    settings.revokedKeysFile = revoked
    settings.prefer = prefer
    return settings
  }

  static func parse(_ root: YAMLNode, environment: [String: String], reader: inout NodeReader) -> BrokerConfig
  {
    var config = BrokerConfig()
    let keys = [
      "listen", "region", "key_ttl", "max_clock_skew", "signing_key_file", "audit_log", "replay_cache",
      "store", "max_body_bytes", "max_connections", "max_connections_per_source", "idle_timeout",
      "header_timeout",
      "body_timeout", "principals", "groups", "hosts", "certificates",
    ]
    guard reader.mapping(root, "the broker configuration", allowed: keys) != nil else { return config }
    if let node = root["listen"], let text = reader.string(node, "'listen'") {
      if let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
        (0...65535).contains(port)
      {
        config.host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        config.port = port
      } else {
        reader.error("'listen' is '\(text)'; expected HOST:PORT like 127.0.0.1:8600.", at: node.location)
      }
    }
    if let node = root["region"], let region = reader.string(node, "'region'") {
      if (1...64).contains(region.utf8.count),
        region.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D })
      {
        config.region = region
        config.regionIsDefault = false
      } else {
        reader.error(
          "'region' is '\(region)'; expected a region name of lowercase letters, digits and '-' like us-east-1.",
          at: node.location)
      }
    }
    if let node = root["key_ttl"], let span = reader.timeSpan(node, "'key_ttl'") {
      if span.milliseconds < 1000 {
        reader.error("'key_ttl' must be at least 1s.", at: node.location)
      } else {
        config.keyTTL = span
      }
    }
    if let node = root["max_clock_skew"], let span = reader.timeSpan(node, "'max_clock_skew'") {
      config.maxClockSkew = span
    }
    if let node = root["signing_key_file"] {
      config.signingKeyFile = reader.string(node, "'signing_key_file'")
    }
    if let node = root["audit_log"] { config.auditLog = reader.string(node, "'audit_log'") }
    if let node = root["replay_cache"], let path = reader.string(node, "'replay_cache'") {
      if path.isEmpty {
        reader.error(
          "'replay_cache' is empty; expected the path of a file the broker may create.", at: node.location)
      } else {
        config.replayCache = path
      }
    }
    if let node = root["store"] {
      var urlNode: YAMLNode? = node
      if case .mapping = node.content {
        urlNode = nil
        if let fields = reader.mapping(node, "'store'", allowed: ["url", "password_file"]) {
          for field in fields {
            switch field.key {
            case "url": urlNode = field.value
            case "password_file":
              config.storePasswordFile = reader.string(field.value, "'password_file' of 'store'")
            default: break
            }
          }
          if urlNode == nil {
            reader.error("'store' has no 'url'; expected url: postgresql://….", at: node.location)
          }
        }
      }
      if let urlNode, let url = reader.string(urlNode, "'store'") {
        let origin = "\(urlNode.location)"
        do {
          // Syntax only: the password file is read when the broker starts.
          _ = try PostgresLocation.parse(url, origin: origin, environment: [:])
          config.store = url
          config.storeOrigin = origin
        } catch {
          reader.error(
            error.description.hasPrefix(origin + ": ")
              ? String(error.description.dropFirst(origin.count + 2)) : error.description,
            at: urlNode.location)
        }
      }
      for name in ["audit_log", "replay_cache"] where root[name] != nil {
        reader.error(
          "'\(name)' cannot be used with 'store': with a database, the audit chain and the replay cache live there (export the chain with 'sixty audit export --store').",
          at: root[name]?.location ?? node.location)
      }
    }
    if let node = root["certificates"] {
      config.certificates = parseCertificates(node, reader: &reader)
    }
    if let node = root["max_body_bytes"] {
      config.maxBodyBytes =
        reader.int(node, "'max_body_bytes'", range: 1024...1_048_576) ?? config.maxBodyBytes
    }
    if let node = root["max_connections"] {
      config.maxConnections =
        reader.int(node, "'max_connections'", range: 1...100_000) ?? config.maxConnections
    }
    if let node = root["max_connections_per_source"] {
      if let limit = reader.int(node, "'max_connections_per_source'", range: 1...100_000) {
        if limit >= config.maxConnections {
          reader.error(
            "'max_connections_per_source' is \(limit); expected fewer than 'max_connections' (\(config.maxConnections)), so that one source cannot take every connection.",
            at: node.location)
        } else {
          config.maxConnectionsPerSource = limit
        }
      }
    } else {
      config.maxConnectionsPerSource = max(1, min(32, config.maxConnections / 2))
    }
    for (key, keyPath) in [
      ("idle_timeout", \BrokerConfig.idleTimeout), ("header_timeout", \.headerTimeout),
      ("body_timeout", \.bodyTimeout),
    ] {
      guard let node = root[key], let span = reader.timeSpan(node, "'\(key)'") else { continue }
      if span.milliseconds < 100 || span.milliseconds > 3_600_000 {
        reader.error("'\(key)' must be between 100ms and 1h.", at: node.location)
      } else {
        config[keyPath: keyPath] = span
      }
    }
    var groups: [String: [CIDR]] = [:]
    if let node = root["groups"], let entries = reader.mapping(node, "'groups'") {
      for entry in entries {
        guard let fields = reader.mapping(entry.value, "group '\(entry.key)'", allowed: ["allowed_sources"])
        else { continue }
        var sources: [CIDR] = []
        for field in fields {
          for (text, location) in reader.stringList(field.value, "'allowed_sources' of group '\(entry.key)'")
            ?? []
          {
            if let cidr = CIDR(text) {
              sources.append(cidr)
            } else {
              reader.error(
                "'\(text)' is not a CIDR; expected an address or network like 10.0.0.0/8 or ::1/128.",
                at: location)
            }
          }
        }
        groups[entry.key] = sources
      }
    }
    if let node = root["hosts"], let entries = reader.mapping(node, "'hosts'") {
      for entry in entries {
        let id = entry.key
        guard isInstanceID(id) else {
          reader.error(
            "'\(id)' is not an instance id; expected 'i-' followed by 8 to 30 hex digits.",
            at: entry.keyLocation)
          continue
        }
        guard
          let fields = reader.mapping(
            entry.value, "host '\(id)'",
            allowed: ["name", "zone", "tags", "group", "token", "token_env", "allowed_sources"])
        else { continue }
        var host = RegisteredHost(
          instanceID: id, name: id, zone: nil, tags: [:], token: "", allowedSources: [])
        for field in fields {
          switch field.key {
          case "name": host.name = reader.string(field.value, "'name' of host '\(id)'") ?? id
          case "zone": host.zone = reader.string(field.value, "'zone' of host '\(id)'")
          case "tags":
            for (key, value, _) in reader.stringMap(field.value, "'tags' of host '\(id)'") ?? [] {
              host.tags[key] = value
            }
          case "group":
            if let name = reader.string(field.value, "'group' of host '\(id)'") {
              if let sources = groups[name] {
                host.allowedSources += sources
              } else {
                reader.error(
                  "the host '\(id)' is in group '\(name)', which is not defined under 'groups'\(Suggestion.hint(for: name, in: groups.keys)).",
                  at: field.value.location)
              }
            }
          case "allowed_sources":
            for (text, location) in reader.stringList(field.value, "'allowed_sources' of host '\(id)'") ?? []
            {
              if let cidr = CIDR(text) {
                host.allowedSources.append(cidr)
              } else {
                reader.error(
                  "'\(text)' is not a CIDR; expected an address or network like 10.0.0.0/8.", at: location)
              }
            }
          default:
            if let secret = secretValue(
              field, "agent token of host '\(id)'", environment: environment, reader: &reader)
            {
              host.token = secret
              if field.key == "token" { config.inlineSecrets.append("the agent token of host '\(id)'") }
            }
          }
        }
        if host.token.isEmpty {
          reader.error(
            "the host '\(id)' has no agent token; expected 'token' or 'token_env'.", at: entry.keyLocation)
        } else if host.token.utf8.count < 16 {
          reader.error(
            "the agent token of host '\(id)' is shorter than 16 characters; expected a long random string.",
            at: entry.keyLocation)
        }
        config.hosts.append(host)
      }
    }
    if let node = root["principals"], let entries = reader.mapping(node, "'principals'") {
      var seenKeys: Set<String> = []
      for entry in entries {
        guard
          let fields = reader.mapping(
            entry.value, "principal '\(entry.key)'",
            allowed: ["access_key_id", "secret", "secret_env", "hosts", "users", "rate"])
        else { continue }
        var accessKeyID: String?
        var secret: String?
        var selector: HostSelector?
        var users: [String] = []
        var rate = 50.0
        var burst = 100
        for field in fields {
          switch field.key {
          case "access_key_id":
            accessKeyID = reader.string(field.value, "'access_key_id' of principal '\(entry.key)'")
            if let id = accessKeyID {
              if !id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) || id.count < 4
                || id.count > 128
              {
                reader.error(
                  "the access key id '\(id)' must be 4 to 128 letters and digits.", at: field.value.location)
              } else if !seenKeys.insert(id).inserted {
                reader.error("the access key id '\(id)' is used by two principals.", at: field.value.location)
              }
            }
          case "secret", "secret_env":
            secret = secretValue(
              field, "secret of principal '\(entry.key)'", environment: environment, reader: &reader)
            if field.key == "secret" { config.inlineSecrets.append("the secret of principal '\(entry.key)'") }
          case "hosts":
            let texts = reader.stringList(field.value, "'hosts' of principal '\(entry.key)'") ?? []
            do {
              selector = try HostSelector(union: texts.map(\.0))
            } catch {
              reader.error(error.message, at: field.value.location)
            }
          case "users":
            users = (reader.stringList(field.value, "'users' of principal '\(entry.key)'") ?? []).map(\.0)
          default:
            guard
              let rateFields = reader.mapping(
                field.value, "'rate' of principal '\(entry.key)'", allowed: ["per_second", "burst"])
            else { continue }
            for rateField in rateFields {
              if rateField.key == "per_second" {
                if let text = rateField.value.scalar, let value = Double(text), value > 0 {
                  rate = value
                } else {
                  reader.error(
                    "expected a positive number for 'rate.per_second'.", at: rateField.value.location)
                }
              } else {
                burst = reader.int(rateField.value, "'rate.burst'", range: 1...1_000_000) ?? burst
              }
            }
          }
        }
        guard let accessKeyID, let secret else {
          reader.error(
            "the principal '\(entry.key)' needs 'access_key_id' and 'secret' (or 'secret_env').",
            at: entry.keyLocation)
          continue
        }
        guard let selector else {
          reader.error(
            "the principal '\(entry.key)' has no 'hosts'; expected the hosts it may push keys to.",
            at: entry.keyLocation)
          continue
        }
        if users.isEmpty {
          reader.error(
            "the principal '\(entry.key)' has no 'users'; expected the OS users it may push keys for (or '*').",
            at: entry.keyLocation)
          continue
        }
        config.principals.append(
          Principal(
            name: entry.key, accessKeyID: accessKeyID, secret: secret, hosts: selector, users: users,
            rate: rate, burst: burst))
      }
    }
    if config.principals.isEmpty {
      reader.error("the broker configuration has no principals; nobody could push a key.", at: root.location)
    }
    return config
  }

  static func secretValue(
    _ field: YAMLPair, _ what: String, environment: [String: String], reader: inout NodeReader
  ) -> String? {
    guard let text = reader.string(field.value, "the \(what)") else { return nil }
    if field.key.hasSuffix("_env") {
      guard let value = environment[text], !value.isEmpty else {
        reader.error(
          "the environment variable '\(text)' named for the \(what) is not set.", at: field.value.location)
        return nil
      }
      return value
    }
    return text
  }

  static func isInstanceID(_ text: String) -> Bool {
    text.hasPrefix("i-") && (10...32).contains(text.count)
      && text.dropFirst(2).allSatisfy { $0.isHexDigit && ($0.isNumber || $0.isLowercase) }
  }
}

extension BrokerConfig {
  /// Listens on `HOST:PORT` instead of the configured address (`--listen`; `[::1]:8600` for IPv6,
  /// port 0 for a free one).
  public mutating func listen(on address: String) throws(BrokerStartError) {
    guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
      (0...65535).contains(port)
    else {
      throw BrokerStartError("--listen '\(address)' is not HOST:PORT, like 127.0.0.1:8600.")
    }
    host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    self.port = port
  }
}
