import Foundation
import InstanceConnect
import SWXMLHash

/// An EC2 instance as `DescribeInstances` reports it (the fields Sixty uses).
public struct EC2Instance: Sendable, Hashable, Codable {
  public var id: String
  public var state: String
  public var privateIP: String?
  public var publicIP: String?
  public var privateDNS: String?
  public var publicDNS: String?
  public var zone: String?
  public var vpcID: String?
  public var subnetID: String?
  public var platform: String?
  public var tags: [String: String] = [:]
  public var securityGroups: [String] = []
}

/// One inbound rule of a security group.
public struct IngressRule: Sendable, Hashable {
  /// "tcp", "udp", "icmp", or "-1" for every protocol.
  public var proto: String
  public var fromPort: Int?
  public var toPort: Int?
  public var ipv4: [String] = []
  public var ipv6: [String] = []
  public var prefixLists: [String] = []
  public var groups: [String] = []

  /// Does the rule cover TCP port `port`?
  public func allowsTCP(_ port: Int) -> Bool {
    if proto == "-1" || proto.lowercased() == "all" { return true }
    guard proto == "tcp" || proto == "6" else { return false }
    guard let from = fromPort, let to = toPort else { return true }
    return from == -1 || (from...max(from, to)).contains(port)
  }
}

public struct SecurityGroup: Sendable, Hashable {
  public var id: String
  public var name: String
  public var vpcID: String?
  public var ingress: [IngressRule]
}

public struct EC2Error: Error, Sendable, CustomStringConvertible {
  public var description: String
  public var code: String?
  public init(_ description: String, code: String? = nil) {
    self.description = description
    self.code = code
  }
}

/// The EC2 Query API (form-encoded POST, SigV4 service `ec2`, XML answers), for the two calls
/// Sixty makes: `DescribeInstances` (paged) and `DescribeSecurityGroups`. Read-only.
public struct EC2Client: Sendable {
  let caller: AWSCaller
  public static let version = "2016-11-15"

  public init(
    region: String, credentials: any AWSCredentialsProvider, endpoint: URL? = nil,
    transport: any HTTPTransport = URLSessionTransport(timeout: 30), retry: RetryPolicy = RetryPolicy(),
    clock: @escaping @Sendable () -> Date = { Date() }
  ) {
    caller = AWSCaller(
      service: "ec2", endpoint: endpoint ?? Self.endpoint(region: region), region: region,
      credentials: credentials,
      transport: transport, retry: retry, clock: clock)
  }

  public var endpoint: URL { caller.endpoint }
  public var region: String { caller.region }
  public var credentials: any AWSCredentialsProvider { caller.credentials }

  /// `https://ec2.REGION.amazonaws.com/` (`.amazonaws.com.cn` in China).
  public static func endpoint(region: String) -> URL {
    AWSCaller.regionalEndpoint("ec2", region: region, path: "/")
  }

  /// Every instance matching `filters`, following `NextToken` through all pages.
  public func describeInstances(filters: [(name: String, values: [String])], pageSize: Int = 1000)
    async throws(EC2Error) -> [EC2Instance]
  {
    var instances: [EC2Instance] = []
    var token: String?
    var pages = 0
    repeat {
      var parameters: [(String, String)] = [("MaxResults", String(pageSize))]
      for (index, filter) in filters.enumerated() {
        parameters.append(("Filter.\(index + 1).Name", filter.name))
        for (valueIndex, value) in filter.values.enumerated() {
          parameters.append(("Filter.\(index + 1).Value.\(valueIndex + 1)", value))
        }
      }
      if let token { parameters.append(("NextToken", token)) }
      let xml = try await call("DescribeInstances", parameters)
      let (page, next) = Self.parseInstances(xml)
      instances += page
      token = next.flatMap { $0.isEmpty ? nil : $0 }
      pages += 1
      if pages > 10_000 { throw EC2Error("DescribeInstances returned more than 10,000 pages; stopping.") }
    } while token != nil
    return instances
  }

  public func describeSecurityGroups(ids: [String]) async throws(EC2Error) -> [SecurityGroup] {
    guard !ids.isEmpty else { return [] }
    var parameters: [(String, String)] = []
    for (index, id) in ids.enumerated() { parameters.append(("GroupId.\(index + 1)", id)) }
    return Self.parseSecurityGroups(try await call("DescribeSecurityGroups", parameters))
  }

  // MARK: - Wire

  static func formEncode(_ text: String) -> String {
    SigV4.uriEncode(Array(text.utf8))
  }

  func call(_ action: String, _ parameters: [(String, String)]) async throws(EC2Error) -> XMLIndexer {
    let all = [("Action", action), ("Version", Self.version)] + parameters
    let body = Array(
      all.map { "\(Self.formEncode($0.0))=\(Self.formEncode($0.1))" }.joined(separator: "&").utf8)
    let retry = caller.retry
    var attempt = 0
    while true {
      attempt += 1
      let request: HTTPRequest
      do {
        request = try await caller.signedPost(
          headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], body: body,
          date: caller.clock())
      } catch {
        throw EC2Error("\(action) at \(caller.endpointDescription) was not sent: \(error)")
      }
      let response: HTTPResponse
      do {
        response = try await caller.transport.send(request)
      } catch {
        if attempt < retry.maxAttempts {
          try? await retry.sleep(retry.delay(attempt: attempt - 1))
          continue
        }
        throw EC2Error("\(action) at \(caller.endpointDescription) failed: \(error.localizedDescription)")
      }
      if (200..<300).contains(response.status) {
        return XMLHash.config { $0.shouldProcessNamespaces = true }.parse(Data(response.body))
      }
      let error = ServiceError.decode(
        status: response.status, headers: response.headers, body: response.body,
        endpoint: caller.endpointDescription)
      let retryable =
        response.status >= 500
        || ["Throttling", "RequestLimitExceeded", "ThrottlingException"].contains(error.code)
      if retryable && attempt < retry.maxAttempts {
        try? await retry.sleep(retry.delay(attempt: attempt - 1))
        continue
      }
      throw EC2Error(Self.refusal(action, error), code: error.code)
    }
  }

  /// What AWS said, as the AWS CLI shows it: "DescribeInstances at … was refused: AuthFailure: AWS
  /// was not able to validate the provided access credentials (HTTP 401, request …)."
  static func refusal(_ action: String, _ error: ServiceError) -> String {
    var message = error.message
    while message.hasSuffix(".") { message.removeLast() }
    let id = error.requestID.map { ", request \($0)" } ?? ""
    return
      "\(action) at \(error.endpoint) was refused: \(error.code)\(message.isEmpty ? "" : ": \(message)") (HTTP \(error.status)\(id))."
  }

  static func text(_ indexer: XMLIndexer) -> String? {
    guard let value = indexer.element?.text, !value.isEmpty else { return nil }
    return value
  }

  static func parseInstances(_ xml: XMLIndexer) -> ([EC2Instance], String?) {
    let root = xml["DescribeInstancesResponse"]
    var instances: [EC2Instance] = []
    for reservation in root["reservationSet"]["item"].all {
      for item in reservation["instancesSet"]["item"].all {
        var tags: [String: String] = [:]
        for tag in item["tagSet"]["item"].all {
          if let key = text(tag["key"]) { tags[key] = text(tag["value"]) ?? "" }
        }
        instances.append(
          EC2Instance(
            id: text(item["instanceId"]) ?? "", state: text(item["instanceState"]["name"]) ?? "unknown",
            privateIP: text(item["privateIpAddress"]), publicIP: text(item["ipAddress"]),
            privateDNS: text(item["privateDnsName"]), publicDNS: text(item["dnsName"]),
            zone: text(item["placement"]["availabilityZone"]), vpcID: text(item["vpcId"]),
            subnetID: text(item["subnetId"]),
            platform: text(item["platformDetails"]) ?? text(item["platform"]),
            tags: tags, securityGroups: item["groupSet"]["item"].all.compactMap { text($0["groupId"]) }))
      }
    }
    return (instances, text(root["nextToken"]))
  }

  /// Security groups from a `DescribeSecurityGroups` answer.
  public static func securityGroups(fromXML data: Data) -> [SecurityGroup] {
    parseSecurityGroups(XMLHash.config { $0.shouldProcessNamespaces = true }.parse(data))
  }

  static func parseSecurityGroups(_ xml: XMLIndexer) -> [SecurityGroup] {
    xml["DescribeSecurityGroupsResponse"]["securityGroupInfo"]["item"].all.map { item in
      let rules = item["ipPermissions"]["item"].all.map { rule in
        IngressRule(
          proto: text(rule["ipProtocol"]) ?? "-1", fromPort: text(rule["fromPort"]).flatMap { Int($0) },
          toPort: text(rule["toPort"]).flatMap { Int($0) },
          ipv4: rule["ipRanges"]["item"].all.compactMap { text($0["cidrIp"]) },
          ipv6: rule["ipv6Ranges"]["item"].all.compactMap { text($0["cidrIpv6"]) },
          prefixLists: rule["prefixListIds"]["item"].all.compactMap { text($0["prefixListId"]) },
          groups: rule["groups"]["item"].all.compactMap { text($0["groupId"]) })
      }
      return SecurityGroup(
        id: text(item["groupId"]) ?? "", name: text(item["groupName"]) ?? "", vpcID: text(item["vpcId"]),
        ingress: rules)
    }
  }
}
