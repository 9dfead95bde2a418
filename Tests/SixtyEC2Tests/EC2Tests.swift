import Foundation
import InstanceConnect
import SixtyAgentCore
import SixtyCore
import SixtyPlanning
import SixtyPlaybook
import Testing

@testable import SixtyEC2

/// The EC2 Query client with a fake transport, XML parsing of AWS's answers, hosts from
/// instances, the cache, and the preflight rules.
@Suite struct EC2Tests {
  final class FakeTransport: HTTPTransport, @unchecked Sendable {
    let lock = NSLock()
    var answers: [(Int, String)]
    var requests: [HTTPRequest] = []
    init(_ answers: [(Int, String)]) { self.answers = answers }
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
      let (status, body) = lock.withLock {
        requests.append(request)
        return answers.removeFirst()
      }
      return HTTPResponse(status: status, headers: [:], body: Array(body.utf8))
    }
  }

  static func instancesPage(_ items: String, next: String?) -> String {
    """
    <?xml version="1.0" encoding="UTF-8"?>
    <DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
      <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
      <reservationSet><item><reservationId>r-1234567890abcdef0</reservationId><ownerId>123456789012</ownerId>
        <instancesSet>\(items)</instancesSet></item></reservationSet>
      \(next.map { "<nextToken>\($0)</nextToken>" } ?? "")
    </DescribeInstancesResponse>
    """
  }

  static func instance(
    _ id: String, ip: String?, publicIP: String? = nil, state: String = "running",
    tags: [String: String] = [:], groups: [String] = ["sg-0aaa1111"]
  ) -> String {
    """
    <item>
      <instanceId>\(id)</instanceId><imageId>ami-0abcdef1234567890</imageId>
      <instanceState><code>16</code><name>\(state)</name></instanceState>
      <privateDnsName>ip-\(ip ?? "x").ec2.internal</privateDnsName>
      <dnsName>\(publicIP.map { "ec2-\($0).compute-1.amazonaws.com" } ?? "")</dnsName>
      <placement><availabilityZone>us-east-1a</availabilityZone><tenancy>default</tenancy></placement>
      <subnetId>subnet-0123</subnetId><vpcId>vpc-0456</vpcId>
      \(ip.map { "<privateIpAddress>\($0)</privateIpAddress>" } ?? "")
      \(publicIP.map { "<ipAddress>\($0)</ipAddress>" } ?? "")
      <groupSet>\(groups.map { "<item><groupId>\($0)</groupId><groupName>n</groupName></item>" }.joined())</groupSet>
      <platformDetails>Linux/UNIX</platformDetails>
      <tagSet>\(tags.map { "<item><key>\($0.key)</key><value>\($0.value)</value></item>" }.joined())</tagSet>
    </item>
    """
  }

  func client(_ transport: FakeTransport, retry: RetryPolicy = .none) -> EC2Client {
    EC2Client(
      region: "us-east-1", credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret"),
      endpoint: URL(string: "http://127.0.0.1:9")!, transport: transport, retry: retry,
      clock: { Date(timeIntervalSince1970: 1_800_000_000) })
  }

  @Test func describeInstancesFollowsNextTokenAndSignsFormRequests() async throws {
    let transport = FakeTransport([
      (
        200,
        Self.instancesPage(
          Self.instance("i-0aaa", ip: "10.0.0.1", tags: ["Name": "web-1", "role": "web"]), next: "tok/en+1")
      ),
      (200, Self.instancesPage(Self.instance("i-0bbb", ip: "10.0.0.2", publicIP: "198.51.100.7"), next: nil)),
    ])
    let found = try await client(transport).describeInstances(
      filters: [
        (name: "tag:role", values: ["web", "db"]), (name: "instance-state-name", values: ["running"]),
      ],
      pageSize: 5)
    #expect(found.map(\.id) == ["i-0aaa", "i-0bbb"])
    #expect(found[0].tags == ["Name": "web-1", "role": "web"])
    #expect(found[0].privateIP == "10.0.0.1" && found[0].zone == "us-east-1a" && found[0].vpcID == "vpc-0456")
    #expect(found[0].securityGroups == ["sg-0aaa1111"])
    #expect(found[1].publicIP == "198.51.100.7")
    #expect(found[1].publicDNS == "ec2-198.51.100.7.compute-1.amazonaws.com")
    let first = String(decoding: transport.requests[0].body, as: UTF8.self)
    #expect(
      first
        == "Action=DescribeInstances&Version=2016-11-15&MaxResults=5&Filter.1.Name=tag%3Arole&Filter.1.Value.1=web&Filter.1.Value.2=db&Filter.2.Name=instance-state-name&Filter.2.Value.1=running"
    )
    let second = String(decoding: transport.requests[1].body, as: UTF8.self)
    #expect(second.hasSuffix("&NextToken=tok%2Fen%2B1"))
    let headers = Dictionary(
      transport.requests[0].headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
    #expect(headers["content-type"] == "application/x-www-form-urlencoded; charset=utf-8")
    #expect(headers["x-amz-date"] == "20270115T080000Z")
    #expect(
      headers["authorization"]?.hasPrefix(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20270115/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
      ) == true)
    // The signature verifies with the same secret (the broker's verifier is the reference).
    let request = SigV4Request(
      method: "POST", path: "/", headers: transport.requests[0].headers.filter { $0.name != "Authorization" },
      body: transport.requests[0].body)
    let parsed = try SigV4.parseAuthorization(headers["authorization"]!)
    #expect(parsed.service == "ec2")
    #expect(
      SigV4.authorization(
        for: request, credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret"),
        region: "us-east-1", service: "ec2", amzDate: "20270115T080000Z") == headers["authorization"])
  }

  @Test func errorsAreNamedAndThrottlingIsRetried() async throws {
    let error = """
      <?xml version="1.0" encoding="UTF-8"?>
      <Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>ea966190</RequestID></Response>
      """
    let throttled = """
      <Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors></Response>
      """
    let transport = FakeTransport([(400, error)])
    do {
      _ = try await client(transport).describeInstances(filters: [])
      Issue.record("expected an error")
    } catch {
      #expect(error.code == "UnauthorizedOperation")
      #expect(
        error.description
          == "DescribeInstances at http://127.0.0.1:9 was refused: UnauthorizedOperation: You are not authorized to perform this operation (HTTP 400, request ea966190)."
      )
    }
    let retrying = FakeTransport([
      (503, throttled), (503, throttled), (200, Self.instancesPage("", next: nil)),
    ])
    let policy = RetryPolicy(maxAttempts: 3, base: 0.001, cap: 0.002)
    let none = try await client(retrying, retry: policy).describeInstances(filters: [])
    #expect(none.isEmpty)
    #expect(retrying.requests.count == 3)
  }

  @Test func securityGroupsParseEveryKindOfSource() {
    let xml = """
      <DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
        <requestId>r</requestId>
        <securityGroupInfo><item>
          <ownerId>123456789012</ownerId><groupId>sg-0aaa1111</groupId><groupName>ssh</groupName><vpcId>vpc-0456</vpcId>
          <ipPermissions>
            <item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort>
              <groups><item><userId>123456789012</userId><groupId>sg-0bastion</groupId></item></groups>
              <ipRanges><item><cidrIp>203.0.113.0/24</cidrIp></item></ipRanges>
              <ipv6Ranges><item><cidrIpv6>2001:db8::/32</cidrIpv6></item></ipv6Ranges>
              <prefixListIds><item><prefixListId>pl-0123</prefixListId></item></prefixListIds></item>
            <item><ipProtocol>-1</ipProtocol><groups/><ipRanges><item><cidrIp>10.1.0.0/16</cidrIp></item></ipRanges></item>
          </ipPermissions>
        </item></securityGroupInfo>
      </DescribeSecurityGroupsResponse>
      """
    let groups = EC2Client.securityGroups(fromXML: Data(xml.utf8))
    #expect(groups.count == 1)
    let rules = groups[0].ingress
    #expect(
      rules[0]
        == IngressRule(
          proto: "tcp", fromPort: 22, toPort: 22, ipv4: ["203.0.113.0/24"], ipv6: ["2001:db8::/32"],
          prefixLists: ["pl-0123"], groups: ["sg-0bastion"]))
    #expect(rules[1].allowsTCP(22) && rules[1].allowsTCP(443))
    #expect(IngressRule(proto: "tcp", fromPort: 20, toPort: 30).allowsTCP(22))
    #expect(!IngressRule(proto: "tcp", fromPort: 443, toPort: 443).allowsTCP(22))
    #expect(!IngressRule(proto: "udp", fromPort: 22, toPort: 22).allowsTCP(22))
  }

  func source(_ yaml: String) throws -> EC2InventorySource {
    let (node, diagnostics) = YAMLLoader.parse(text: yaml, file: "ec2.yml")
    var reader = NodeReader()
    reader.diagnostics.append(contentsOf: diagnostics)
    let inventory = InventoryParser.parse(try #require(node), file: "ec2.yml", reader: &reader)
    #expect(reader.diagnostics.all.isEmpty, "\(reader.diagnostics.all)")
    return try #require(inventory.ec2)
  }

  @Test func hostsTakeNamesAddressesAndUsersFromInstances() throws {
    let spec = try source(
      """
      source: aws-ec2
      region: us-east-1
      hostnames: [public-ip, private-ip]
      user: admin
      users: [{match: "os=ubuntu", user: ubuntu}]
      instance_connect_endpoint: {id: eice-0123456789abcdef0, max_connections: 5}
      """)
    let instances = [
      EC2Instance(id: "i-03", state: "running", privateIP: "10.0.0.3", tags: ["Name": "dup"]),
      EC2Instance(
        id: "i-01", state: "running", privateIP: "10.0.0.1", publicIP: "198.51.100.1",
        tags: ["Name": "web-1", "os": "ubuntu"]),
      EC2Instance(
        id: "i-02", state: "running", privateIP: "10.0.0.2", tags: ["Name": "dup", "sixty:user": "ops"]),
      EC2Instance(id: "i-04", state: "stopped", privateIP: "10.0.0.4"),
      EC2Instance(id: "i-05", state: "running", tags: ["Name": "no-address"]),
    ]
    let (hosts, warnings) = EC2Inventory.hosts(instances, source: spec, region: "us-east-1")
    #expect(hosts.map(\.name) == ["web-1", "i-02", "i-03"])  // duplicates named by id, stopped left out
    #expect(hosts.map(\.address) == ["198.51.100.1", "10.0.0.2", "10.0.0.3"])  // public first, then private
    #expect(hosts.map { $0.user ?? "" } == ["ubuntu", "ops", "admin"])
    #expect(
      warnings.map(\.message) == [
        "the instance i-05 (no-address) has no public-ip or private-ip address, so it is left out; change 'hostnames' to reach it another way."
      ])
    #expect(hosts[0].connectionLimit == 5)
    #expect(
      hosts[0].sshOptions == [
        "ProxyCommand=aws ec2-instance-connect open-tunnel --region us-east-1 --instance-id i-01 --instance-connect-endpoint-id eice-0123456789abcdef0 --remote-port %p"
      ])
    guard case .map(let facts)? = hosts[1].vars["ec2"] else {
      Issue.record("no ec2 facts")
      return
    }
    #expect(facts["instance_id"] == .string("i-02"))
    #expect(facts["private_ip"] == .string("10.0.0.2"))
  }

  @Test func hostileTagsNeverBecomeUsersNamesOrOptions() {
    let spec = EC2InventorySource()
    let instances = [
      EC2Instance(
        id: "i-01", state: "running", privateIP: "10.0.0.1",
        tags: ["Name": "a;rm -rf /", "sixty:user": "-oProxyCommand=touch /tmp/x"]),
      EC2Instance(
        id: "i-02", state: "running", privateIP: "10.0.0.2",
        tags: ["Name": "$(id)", "sixty:user": "ops\nroot"]),
      EC2Instance(id: "i-03", state: "running", privateIP: "-oProxyCommand=x", tags: ["Name": "web-3"]),
    ]
    let (hosts, warnings) = EC2Inventory.hosts(instances, source: spec, region: "us-east-1")
    #expect(hosts.map(\.name) == ["i-01", "i-02"])  // names that are not names fall back to the id
    #expect(hosts.map { $0.user ?? "" } == ["ec2-user", "ec2-user"])
    #expect(hosts.allSatisfy { $0.sshOptions.isEmpty })
    #expect(warnings.count == 3, "\(warnings.map(\.message))")
    #expect(
      warnings[0].message.contains(
        "has the tag sixty:user='-oProxyCommand=touch /tmp/x', which is not a user name"))
    #expect(warnings[2].message.contains("the instance i-03 (web-3) has no private-ip address"))
  }

  /// ssh runs ProxyCommand through a shell: an instance id from the EC2 answer that is not a
  /// plain word leaves its instance out instead of reaching that shell.
  @Test func onlyPlainWordsReachAProxyCommand() {
    var spec = EC2InventorySource()
    spec.instanceConnectEndpoint = "eice-0123456789abcdef0"
    let instances = [
      EC2Instance(id: "i-0123456789abcdef0", state: "running", privateIP: "10.0.0.1"),
      EC2Instance(id: "i-01;touch /tmp/x", state: "running", privateIP: "10.0.0.2"),
      EC2Instance(id: "i-02$\u{301}(id)", state: "running", privateIP: "10.0.0.3"),
    ]
    let (hosts, warnings) = EC2Inventory.hosts(instances, source: spec, region: "us-east-1")
    #expect(hosts.map(\.instanceID) == ["i-0123456789abcdef0"])
    #expect(
      hosts.first?.sshOptions == [
        "ProxyCommand=aws ec2-instance-connect open-tunnel --region us-east-1 --instance-id i-0123456789abcdef0 --instance-connect-endpoint-id eice-0123456789abcdef0 --remote-port %p"
      ])
    #expect(warnings.count == 2 && warnings.allSatisfy { $0.message.contains("it is left out") })
  }

  @Test func proxyJumpMustBeHops() {
    for (jump, ok) in [
      ("bastion", true), ("ops@bastion.example.com:2222", true), ("a@b:22,c", true), ("[::1]:22", true),
      ("-oProxyCommand=x", false), ("bastion;id", false), ("ops@bastion:99999", false),
      ("b$\u{301}(id)", false),
      ("", false),
    ] {
      #expect(EC2InventorySource.isJumpList(jump) == ok, "\(jump)")
    }
  }

  @Test func anEndpointCapsThePlaysConcurrency() throws {
    var spec = EC2InventorySource()
    spec.instanceConnectEndpoint = "eice-0123456789abcdef0"
    let instances = (1...30).map {
      EC2Instance(id: String(format: "i-%03d", $0), state: "running", privateIP: "10.0.0.\($0)")
    }
    let (hosts, _) = EC2Inventory.hosts(instances, source: spec, region: "us-east-1")
    let inventory = Inventory(hosts: hosts)
    let (playbookNode, _) = YAMLLoader.parse(
      text: "name: p\nhosts: all\npolicy: {concurrency: 50}\ntasks:\n  - name: t\n    command: [true]\n",
      file: "p.yml")
    var reader = NodeReader()
    let playbook = PlaybookParser.parse(try #require(playbookNode), path: "p.yml", reader: &reader)
    let plan = try Planner.plan(playbook, inventory: inventory, options: PlanOptions(defaultUser: "ec2-user"))
    #expect(plan.plays[0].policy.concurrency == 20)
  }

  @Test func aBadEC2InventoryIsReportedWithPositions() {
    let (node, _) = YAMLLoader.parse(
      text: """
        source: aws-ec2
        region: moon-1
        hostnames: [private-ipp]
        states: [sleeping]
        proxy_jump: bastion
        instance_connect_endpoint: {id: eice-0123456789abcdef0}
        groups: {web: {hosts: [web-1]}}
        """, file: "ec2.yml")
    var reader = NodeReader()
    _ = InventoryParser.parse(node!, file: "ec2.yml", reader: &reader)
    #expect(
      reader.diagnostics.all.map(\.description).sorted() == [
        "ec2.yml:2:9: error: 'moon-1' is not an AWS region; expected something like eu-west-1.",
        "ec2.yml:3:13: error: 'private-ipp' is not a hostname kind (did you mean 'private-ip'?); expected private-ip, public-ip, dns or private-dns.",
        "ec2.yml:4:10: error: 'sleeping' is not an instance state; expected one of: pending, running, shutting-down, terminated, stopping, stopped.",
        "ec2.yml:5:13: error: the inventory sets both proxy_jump and instance_connect_endpoint; expected one way to reach the instances.",
        "ec2.yml:7:24: error: the group 'web' lists hosts by name, but an aws-ec2 inventory's hosts are found at run time; select them with 'match' (tags, globs).",
      ])
  }

  @Test func theCacheIsUsedWithinItsTTLOnly() async throws {
    let directory = NSTemporaryDirectory() + "sixty-ec2-cache-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var spec = EC2InventorySource()
    spec.cacheTTL = .minutes(5)
    let transport = FakeTransport([
      (200, Self.instancesPage(Self.instance("i-0aaa", ip: "10.0.0.1"), next: nil)),
      (200, Self.instancesPage(Self.instance("i-0bbb", ip: "10.0.0.2"), next: nil)),
    ])
    let ec2 = client(transport)
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let first = try await EC2Inventory.instances(for: spec, client: ec2, cacheDirectory: directory, now: now)
    #expect(!first.cached && first.instances.map(\.id) == ["i-0aaa"])
    let second = try await EC2Inventory.instances(
      for: spec, client: ec2, cacheDirectory: directory, now: now + 60)
    #expect(second.cached && second.instances.map(\.id) == ["i-0aaa"])
    let stale = try await EC2Inventory.instances(
      for: spec, client: ec2, cacheDirectory: directory, now: now + 301)
    #expect(!stale.cached && stale.instances.map(\.id) == ["i-0bbb"])
    #expect(transport.requests.count == 2)
    let files = try FileManager.default.contentsOfDirectory(atPath: directory)
    var info = stat()
    #expect(stat(directory + "/" + files[0], &info) == 0 && info.st_mode & 0o777 == 0o600)
  }

  @Test func preflightFollowsTheConnectionPath() {
    func host(
      _ name: String, groups: [String], options: [String] = [], limit: Int? = nil, state: String = "running",
      platform: String = "Linux/UNIX"
    ) -> InventoryHost {
      var host = InventoryHost(name: name, address: "10.0.0.9", instanceID: "i-\(name)")
      host.vars["ec2"] = .map([
        "state": .string(state), "region": .string("eu-west-1"), "platform": .string(platform),
        "security_groups": .list(groups.map(Value.string)),
      ])
      host.sshOptions = options
      host.connectionLimit = limit
      host.connectionPath = limit == nil ? nil : "eice-1"
      return host
    }
    let groups: [String: SecurityGroup] = [
      "sg-runner": SecurityGroup(
        id: "sg-runner", name: "", vpcID: nil,
        ingress: [IngressRule(proto: "tcp", fromPort: 22, toPort: 22, ipv4: ["192.0.2.0/24"])]),
      "sg-bastion": SecurityGroup(
        id: "sg-bastion", name: "", vpcID: nil,
        ingress: [IngressRule(proto: "tcp", fromPort: 22, toPort: 22, groups: ["sg-0b"])]),
      "sg-eic": SecurityGroup(
        id: "sg-eic", name: "", vpcID: nil,
        ingress: [IngressRule(proto: "tcp", fromPort: 22, toPort: 22, ipv4: ["18.202.216.48/29"])]),
      "sg-v6world": SecurityGroup(
        id: "sg-v6world", name: "", vpcID: nil,
        ingress: [IngressRule(proto: "-1", fromPort: nil, toPort: nil, ipv6: ["::/0"])]),
    ]
    let ipRanges = """
      {"syncToken": "1", "prefixes": [
        {"ip_prefix": "18.202.216.48/29", "region": "eu-west-1", "service": "EC2_INSTANCE_CONNECT", "network_border_group": "eu-west-1"},
        {"ip_prefix": "3.16.146.0/29", "region": "us-east-2", "service": "EC2_INSTANCE_CONNECT", "network_border_group": "us-east-2"},
        {"ip_prefix": "52.95.0.0/16", "region": "eu-west-1", "service": "AMAZON", "network_border_group": "eu-west-1"}],
       "ipv6_prefixes": []}
      """
    let prefixes = try? PreflightSources.instanceConnectPrefixes(ipRangesJSON: Data(ipRanges.utf8))
    #expect(prefixes?["eu-west-1"]?.map(\.description) == ["18.202.216.48/29"])
    let sources = PreflightSources(
      runner: [CIDR("192.0.2.10")!], bastion: [], groups: ["sg-0b"], instanceConnectPrefixes: prefixes ?? [:])
    let findings = Preflight.check(
      hosts: [
        (host("direct", groups: ["sg-runner"]), "ec2-user"),
        (host("jumped", groups: ["sg-bastion"], options: ["ProxyJump=ops@bastion"]), "ec2-user"),
        (host("jumped-wrong", groups: ["sg-runner"], options: ["ProxyJump=ops@bastion"]), "ec2-user"),
        (host("console", groups: ["sg-eic"]), "ubuntu"),
        (host("v6", groups: ["sg-v6world"]), "oddname"),
        (host("win", groups: ["sg-runner"], platform: "Windows"), "ec2-user"),
        (host("gone", groups: ["sg-missing"], state: "terminated"), "ec2-user"),
      ], groups: groups, sources: sources)
    let summary = findings.map { "\($0.host) \($0.severity.rawValue)" }
    #expect(
      summary == [
        "jumped-wrong error", "v6 error", "v6 warning", "v6 note", "win error", "gone error", "gone error",
        "gone error",
      ], "\(findings.map(\.description))")
    #expect(
      findings[0].message.contains("from the bastion ops@bastion (its address is unknown")
        || findings[0].message.contains("members of sg-0b"))
    #expect(Preflight.covers(CIDR("10.0.0.0/8")!, CIDR("10.1.2.0/24")!))
    #expect(!Preflight.covers(CIDR("10.1.2.0/24")!, CIDR("10.0.0.0/8")!))
    #expect(!Preflight.covers(CIDR("10.0.0.0/8")!, CIDR("2001:db8::1")!))
  }
}
