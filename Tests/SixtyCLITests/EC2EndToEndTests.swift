import Foundation
import Testing

/// `source: aws-ec2` inventories, `sixty preflight` and `sixty plan --preflight` against
/// moto_server on 127.0.0.1 with signature checking on. The VPC is 127.0.0.0/16, so every
/// instance's address is a loopback one (nothing is sent to moto's invented addresses: plan
/// and preflight never connect to instances).
@Suite(.serialized) struct EC2EndToEndTests {
  struct Setup {
    var moto: MotoServer
    var directory: String
    var inventory: String
    var playbook: String
    var ids: [String: String]  // Name tag -> instance id
    var environment: [String: String]
  }

  static let setupScript = """
    import boto3, json, sys
    ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name="us-east-1",
                       aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
    vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.1.0/24")["Subnet"]["SubnetId"]
    def group(name, rules):
        gid = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
        if rules:
            ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=rules)
        return gid
    tcp = lambda lo, hi, cidr: {"IpProtocol": "tcp", "FromPort": lo, "ToPort": hi, "IpRanges": [{"CidrIp": cidr}]}
    good = group("ssh-from-runner", [tcp(22, 22, "127.0.0.0/8")])
    wide = group("ssh-range", [tcp(20, 30, "127.0.0.1/32")])
    world = group("ssh-world", [tcp(22, 22, "0.0.0.0/0")])
    https = group("https-only", [tcp(443, 443, "0.0.0.0/0")])
    ids = {}
    def run(name, groups, tags, stop=False):
        t = [{"Key": "Name", "Value": name}] + [{"Key": k, "Value": v} for k, v in tags.items()]
        i = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1, SubnetId=subnet,
                              SecurityGroupIds=groups,
                              TagSpecifications=[{"ResourceType": "instance", "Tags": t}])["Instances"][0]["InstanceId"]
        if stop:
            ec2.stop_instances(InstanceIds=[i])
        ids[name] = i
    for n in range(1, 6):
        run("web-%d" % n, [good], {"role": "web", "env": "prod"})
    run("web-6", [wide], {"role": "web", "env": "staging", "sixty:user": "ubuntu"})
    run("web-open", [world], {"role": "web", "env": "prod"})
    run("web-closed", [https], {"role": "web", "env": "prod"})
    run("web-root", [good], {"role": "web", "env": "prod", "sixty:user": "root"})
    run("web-stopped", [good], {"role": "web", "env": "prod"}, stop=True)
    run("db-1", [good], {"role": "db", "env": "prod"})
    print(json.dumps(ids))
    """

  func setUp() throws -> Setup {
    let directory = NSTemporaryDirectory() + "sixty-ec2-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let moto = try MotoServer(
      directory: directory,
      actions: [
        "ec2:Describe*", "ec2:Create*", "ec2:RunInstances", "ec2:StopInstances",
        "ec2:AuthorizeSecurityGroupIngress", "ec2-instance-connect:SendSSHPublicKey",
      ])
    let made = try runProgram(
      LocalProcess.which("python3")!,
      ["-c", Self.setupScript, moto.endpoint, moto.accessKeyID, moto.secretAccessKey])
    guard made.status == 0, let data = made.stdout.data(using: .utf8),
      let ids = try JSONSerialization.jsonObject(with: data) as? [String: String]
    else {
      moto.stop()
      throw MotoServer.Failure("cannot create the EC2 fixtures: \(made.stderr)")
    }
    let inventory = directory + "/ec2.yml"
    try """
    source: aws-ec2
    region: us-east-1
    endpoint: \(moto.endpoint)
    filters: {"tag:role": web}
    hostnames: [private-ip]
    users:
      - {match: "env=staging", user: admin}
    groups:
      prod: {match: env=prod}

    """.write(toFile: inventory, atomically: true, encoding: .utf8)
    let playbook = directory + "/uptime.yml"
    try
      "name: uptime\nhosts: all\ntasks:\n  - name: up\n    command: [echo, \"{{ ec2.private_ip }}\", \"{{ host.tags.env }}\", \"{{ host.instance_id }}\"]\n"
      .write(
        toFile: playbook, atomically: true, encoding: .utf8)
    var env = moto.environment
    env["AWS_REGION"] = "us-east-1"
    env["XDG_CACHE_HOME"] = directory + "/cache"
    return Setup(
      moto: moto, directory: directory, inventory: inventory, playbook: playbook, ids: ids, environment: env)
  }

  func tearDown(_ setup: Setup) {
    setup.moto.stop()
    try? FileManager.default.removeItem(atPath: setup.directory)
  }

  func planHosts(_ text: String) throws -> [String: [String: Any]] {
    let plan = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    let plays = plan["plays"] as? [[String: Any]] ?? []
    var out: [String: [String: Any]] = [:]
    for (name, host) in plays.first?["hosts"] as? [String: [String: Any]] ?? [:] { out[name] = host }
    return out
  }

  @Test(.enabled(if: MotoServer.available, "needs moto_server"))
  func planSelectsRunningTaggedInstancesAcrossPages() throws {
    let setup = try setUp()
    defer { tearDown(setup) }
    let result = try SixtyBinary.run(
      ["plan", setup.playbook, "-i", setup.inventory, "--ec2-page-size", "5", "--format", "json"],
      environment: setup.environment)
    #expect(result.status == 0, "\(result.stderr)")
    let hosts = try planHosts(result.stdout)
    // Running web instances only (not db-1, not the stopped one), more than one page of them.
    #expect(
      Set(hosts.keys) == [
        "web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "web-open", "web-closed", "web-root",
      ],
      "\(result.stdout)")
    let pages = setup.moto.process.log.components(separatedBy: "\"POST / HTTP/1.1\" 200").count - 1
    #expect(pages >= 2, "DescribeInstances was not paged: \(setup.moto.process.log)")
    for (name, host) in hosts {
      let address = host["address"] as? String ?? ""
      #expect(address.hasPrefix("127.0.1."), "\(name) has \(address)")
      #expect(host["instance_id"] as? String == setup.ids[name])
    }
    #expect(hosts["web-6"]?["user"] as? String == "ubuntu", "the sixty:user tag wins")
    let tasks = hosts["web-1"]?["tasks"] as? [[String: Any]] ?? []
    #expect(
      tasks.first?["argv"] as? [String] == [
        "echo", hosts["web-1"]?["address"] as? String ?? "", "prod", setup.ids["web-1"] ?? "",
      ],
      "\(tasks)")
    #expect(hosts["web-1"]?["user"] as? String == "ec2-user", "the inventory's default")
    // Tags select: the prod group and a tag selector.
    let limited = try SixtyBinary.run(
      ["plan", setup.playbook, "-i", setup.inventory, "--limit", "prod,!web-open", "--format", "json"],
      environment: setup.environment)
    #expect(
      Set(try planHosts(limited.stdout).keys) == [
        "web-1", "web-2", "web-3", "web-4", "web-5", "web-closed", "web-root",
      ])
    // A wrong secret is refused by moto's signature check, with a clear error.
    var bad = setup.environment
    bad["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
    let refused = try SixtyBinary.run(["plan", setup.playbook, "-i", setup.inventory], environment: bad)
    #expect(refused.status == 2)
    #expect(
      refused.stderr.contains("ec2.yml:1:9: error: cannot list the EC2 instances of this inventory"),
      "\(refused.stderr)")
    #expect(
      refused.stderr.contains(
        "DescribeInstances at \(setup.moto.endpoint) was refused: AuthFailure: AWS was not able to validate the provided access credentials (HTTP 401"
      ), "\(refused.stderr)")
    #expect(!refused.stderr.contains("not-the-secret"))
  }

  @Test(.enabled(if: MotoServer.available, "needs moto_server"))
  func runTakesEndpointURLAndTheProfileForItsInventory() throws {
    let setup = try setUp()
    defer { tearDown(setup) }
    // An inventory without an endpoint: --endpoint-url points EC2 (and Instance Connect) at moto,
    // and the keys come from --profile, as the AWS CLI reads them.
    let inventory = setup.directory + "/plain.yml"
    try "source: aws-ec2\nregion: us-east-1\nfilters: {\"tag:role\": web}\nhostnames: [private-ip]\n".write(
      toFile: inventory, atomically: true, encoding: .utf8)
    let credentials = setup.directory + "/credentials"
    try
      "[moto]\naws_access_key_id = \(setup.moto.accessKeyID)\naws_secret_access_key = \(setup.moto.secretAccessKey)\n"
      .write(toFile: credentials, atomically: true, encoding: .utf8)
    var env = setup.environment
    env["AWS_ACCESS_KEY_ID"] = ""
    env["AWS_SECRET_ACCESS_KEY"] = ""
    env["AWS_SHARED_CREDENTIALS_FILE"] = credentials
    env["AWS_CONFIG_FILE"] = setup.directory + "/config"
    env["AWS_ENDPOINT_URL"] = ""
    env["AWS_ENDPOINT_URL_EC2"] = ""
    let arguments = [
      "run", setup.playbook, "-i", inventory, "--dry-run", "--profile", "moto", "--endpoint-url",
      setup.moto.endpoint,
    ]
    let planned = try SixtyBinary.run(arguments, environment: env)
    #expect(planned.status == 0, "\(planned.stderr)")
    #expect(planned.stdout.contains("web-1"), "\(planned.stdout)")
    // Without the profile there are no credentials at all.
    let without = try SixtyBinary.run(
      [
        "run", setup.playbook, "-i", inventory, "--dry-run", "--endpoint-url", setup.moto.endpoint,
        "--refresh-inventory",
      ],
      environment: env)
    #expect(without.status == 2)
    #expect(without.stderr.contains("No AWS credentials were found"), "\(without.stderr)")
  }

  @Test(.enabled(if: MotoServer.available, "needs moto_server"))
  func preflightReportsExactlyTheExpectedFindings() throws {
    let setup = try setUp()
    defer { tearDown(setup) }
    let result = try SixtyBinary.run(
      ["preflight", setup.playbook, "-i", setup.inventory, "--from", "127.0.0.1", "--format", "json"],
      environment: setup.environment)
    #expect(result.status == 3, "\(result.stdout)\(result.stderr)")
    let findings = try #require(
      try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
    let pairs = Set(findings.map { "\($0["host"] as? String ?? "?") \($0["severity"] as? String ?? "?")" })
    #expect(pairs == ["web-closed error", "web-open warning", "web-root warning"], "\(findings)")
    let closed = findings.first { $0["host"] as? String == "web-closed" }?["message"] as? String ?? ""
    #expect(closed.contains("no inbound rule of sg-"), "\(closed)")
    #expect(closed.contains("allows TCP 22 from this runner (127.0.0.1)"), "\(closed)")
    let open = findings.first { $0["host"] as? String == "web-open" }?["message"] as? String ?? ""
    #expect(open.contains("open to the whole internet (0.0.0.0/0 in sg-"), "\(open)")
    #expect(findings.allSatisfy { ($0["instance_id"] as? String)?.hasPrefix("i-") == true })

    // From an address no rule allows, every host but the world-open one fails.
    let elsewhere = try SixtyBinary.run(
      ["preflight", setup.playbook, "-i", setup.inventory, "--from", "10.9.8.7", "--format", "json"],
      environment: setup.environment)
    let other = try #require(
      try JSONSerialization.jsonObject(with: Data(elsewhere.stdout.utf8)) as? [[String: Any]])
    let failing = Set(
      other.filter { $0["severity"] as? String == "error" }.compactMap { $0["host"] as? String })
    #expect(failing == ["web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "web-closed", "web-root"])

    // Stopped instances, when included, are reported as not running.
    let withStopped = setup.directory + "/with-stopped.yml"
    try (try String(contentsOfFile: setup.inventory, encoding: .utf8) + "states: [running, stopped]\n").write(
      toFile: withStopped, atomically: true, encoding: .utf8)
    let stopped = try SixtyBinary.run(
      ["preflight", setup.playbook, "-i", withStopped, "--from", "127.0.0.1", "--limit", "web-stopped"],
      environment: setup.environment)
    #expect(stopped.status == 3)
    #expect(
      stopped.stdout.contains(
        "web-stopped (\(setup.ids["web-stopped"] ?? "?")): error: the instance is stopped, not running."),
      "\(stopped.stdout)")

    // The region's EC2_INSTANCE_CONNECT prefixes, from a cached ip-ranges.json, count as a source:
    // web-6's rule allows 127.0.0.1/32 only, so from 10.9.8.7 it is reachable only through them.
    try FileManager.default.createDirectory(
      atPath: setup.directory + "/cache/sixty", withIntermediateDirectories: true)
    try """
    {"prefixes": [{"ip_prefix": "127.0.0.1/32", "region": "us-east-1", "service": "EC2_INSTANCE_CONNECT"}],
     "ipv6_prefixes": []}
    """.write(toFile: setup.directory + "/cache/sixty/ip-ranges.json", atomically: true, encoding: .utf8)
    let viaPrefixes = try SixtyBinary.run(
      ["preflight", setup.playbook, "-i", setup.inventory, "--from", "10.9.8.7", "--format", "json"],
      environment: setup.environment)
    let prefixed = try #require(
      try JSONSerialization.jsonObject(with: Data(viaPrefixes.stdout.utf8)) as? [[String: Any]])
    let stillFailing = Set(
      prefixed.filter { $0["severity"] as? String == "error" }.compactMap { $0["host"] as? String })
    #expect(stillFailing == ["web-closed"], "\(prefixed)")
    try FileManager.default.removeItem(atPath: setup.directory + "/cache/sixty/ip-ranges.json")

    // sixty plan --preflight shows the same findings after the plan, and exits 3.
    let plan = try SixtyBinary.run(
      ["plan", setup.playbook, "-i", setup.inventory, "--preflight", "--from", "127.0.0.1"],
      environment: setup.environment)
    #expect(plan.status == 3)
    #expect(plan.stdout.contains("Plan for "), "\(plan.stdout)")
    #expect(plan.stdout.contains("Preflight (9 hosts, nothing changed):"), "\(plan.stdout)")
    #expect(plan.stdout.contains("web-closed ("), "\(plan.stdout)")
    #expect(plan.stdout.contains("1 host cannot work as things are; 2 warnings."), "\(plan.stdout)")
    let good = try SixtyBinary.run(
      [
        "plan", setup.playbook, "-i", setup.inventory, "--preflight", "--from", "127.0.0.1", "--limit",
        "web-1",
        "--format", "json",
      ], environment: setup.environment)
    #expect(good.status == 0, "\(good.stdout)\(good.stderr)")
    #expect(good.stdout.hasSuffix(",\"preflight\":[]}\n"), "\(good.stdout.suffix(200))")
  }

  @Test(.enabled(if: MotoServer.available, "needs moto_server"))
  func theInventoryCacheIsUsedWithinItsTTL() throws {
    let setup = try setUp()
    defer { tearDown(setup) }
    let cached = setup.directory + "/cached.yml"
    try (try String(contentsOfFile: setup.inventory, encoding: .utf8) + "cache: {ttl: 10m}\n").write(
      toFile: cached, atomically: true, encoding: .utf8)
    func requests() -> Int { setup.moto.process.log.components(separatedBy: "\"POST / HTTP/1.1\"").count - 1 }
    let first = try SixtyBinary.run(
      ["validate", setup.playbook, "-i", cached], environment: setup.environment)
    #expect(first.status == 0, "\(first.stderr)")
    #expect(first.stdout.contains("9 hosts"), "\(first.stdout)")
    let after = requests()
    let second = try SixtyBinary.run(
      ["validate", setup.playbook, "-i", cached], environment: setup.environment)
    #expect(second.stdout.contains("9 hosts"))
    #expect(requests() == after, "the cached answer was not used")
    let files = try FileManager.default.contentsOfDirectory(atPath: setup.directory + "/cache/sixty")
    #expect(files.count == 1 && files[0].hasPrefix("ec2-"))
    let refreshed = try SixtyBinary.run(
      ["validate", setup.playbook, "-i", cached, "--refresh-inventory"], environment: setup.environment)
    #expect(refreshed.status == 0)
    #expect(requests() > after)
  }
}
