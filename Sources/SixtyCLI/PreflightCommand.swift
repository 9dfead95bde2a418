import ArgumentParser
import Foundation
import SixtyAgentCore
import SixtyCore
import SixtyEC2
import SixtyPlanning
import SixtyPlaybook
import SixtyRun

/// Where preflight assumes Sixty's connections come from.
struct PreflightOptions: ParsableArguments {
  @Option(
    name: .customLong("from"),
    help:
      "This runner's address or network as the instances see it (repeatable; default: its interface addresses)."
  )
  var runner: [String] = []

  @Option(name: .long, help: "The bastion's address or network, for proxy_jump inventories (repeatable).")
  var bastion: [String] = []

  @Option(
    name: .customLong("source-group"),
    help:
      "A security group whose members may connect: a bastion's or an Instance Connect Endpoint's (repeatable)."
  )
  var sourceGroups: [String] = []

  @Option(
    name: .customLong("ip-ranges"),
    help:
      "AWS's ip-ranges.json, for the regions' EC2_INSTANCE_CONNECT prefixes (default: a copy in $XDG_CACHE_HOME/sixty)."
  )
  var ipRanges: String?

  func validate() throws {
    for text in runner + bastion where CIDR(text) == nil {
      throw ValidationError(
        "'\(text)' is not an IP address or CIDR; expected something like 203.0.113.7 or 10.0.0.0/16.")
    }
    for group in sourceGroups where group.range(of: #"^sg-[0-9a-f]{8,}$"#, options: .regularExpression) == nil
    {
      throw ValidationError("'\(group)' is not a security group id; expected sg- and hex digits.")
    }
  }

  func sources() throws -> PreflightSources {
    var prefixes: [String: [CIDR]] = [:]
    // A copy kept in the cache directory is used when none is named.
    let cached = EC2Inventory.defaultCacheDirectory() + "/ip-ranges.json"
    let ipRanges = self.ipRanges ?? (FileManager.default.fileExists(atPath: cached) ? cached : nil)
    if let ipRanges {
      guard let data = FileManager.default.contents(atPath: ipRanges) else {
        throw CLIError("cannot read the ip-ranges file \(ipRanges).", code: 2)
      }
      do {
        prefixes = try PreflightSources.instanceConnectPrefixes(ipRangesJSON: data)
      } catch {
        throw CLIError("\(ipRanges): \(error)", code: 2)
      }
    }
    let runnerCIDRs = runner.isEmpty ? Preflight.localAddresses() : runner.compactMap { CIDR($0) }
    return PreflightSources(
      runner: runnerCIDRs, bastion: bastion.compactMap { CIDR($0) }, groups: sourceGroups,
      instanceConnectPrefixes: prefixes)
  }
}

/// Checks the targets of a plan that come from an aws-ec2 inventory.
enum PreflightCheck {
  static func run(plan: Plan, inputs: PlanLoader.Inputs, options: PreflightOptions, ec2: EC2Options)
    async throws
    -> [PreflightFinding]
  {
    var targets: [(host: InventoryHost, user: String)] = []
    var seen = Set<String>()
    for play in plan.plays {
      for host in play.hosts where host.batch != nil && seen.insert(host.host.name).inserted {
        targets.append((host.host, host.user))
      }
    }
    guard let path = inputs.inventoryPath, let source = InventoryParser.load(path: path).0?.ec2 else {
      throw CLIError(
        "preflight checks EC2 security groups and needs an aws-ec2 inventory (source: aws-ec2); \(inputs.inventoryPath ?? "no inventory") is a static one.",
        code: 2)
    }
    let ids = Array(
      Set(
        targets.flatMap { target -> [String] in
          guard case .map(let ec2)? = target.host.vars["ec2"],
            case .list(let groups)? = ec2["security_groups"]
          else {
            return []
          }
          return groups.compactMap { if case .string(let id) = $0 { id } else { nil } }
        })
    ).sorted()
    var groups: [String: SecurityGroup] = [:]
    if !ids.isEmpty {
      do {
        let client = try await InventoryResolver.client(for: source, options: ec2.settings, profile: nil)
        for group in try await client.describeSecurityGroups(ids: ids) { groups[group.id] = group }
      } catch {
        throw CLIError("cannot read the security groups \(ids.joined(separator: ", ")): \(error)", code: 2)
      }
    }
    return Preflight.check(hosts: targets, groups: groups, sources: try options.sources())
  }

  static func text(_ findings: [PreflightFinding], hosts: Int) -> String {
    var text = "\nPreflight (\(hosts) host\(hosts == 1 ? "" : "s"), nothing changed):\n"
    if findings.isEmpty { return text + "  every target is reachable as planned; no findings.\n" }
    for finding in findings { text += "  \(finding)\n" }
    let errors = Set(findings.filter { $0.severity == .error }.map(\.host)).count
    let warnings = findings.filter { $0.severity == .warning }.count
    text +=
      "\(errors) host\(errors == 1 ? "" : "s") cannot work as things are; \(warnings) warning\(warnings == 1 ? "" : "s").\n"
    return text
  }

  static func json(_ findings: [PreflightFinding], into w: inout JSONWriter) {
    w.beginArray()
    for finding in findings {
      w.beginObject()
      w.field("host", finding.host)
      if let id = finding.instanceID { w.field("instance_id", id) }
      w.field("severity", finding.severity.rawValue)
      w.field("message", finding.message)
      w.endObject()
    }
    w.endArray()
  }
}

struct PreflightCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "preflight",
    abstract: "Check EC2 targets before a run: state, SSH security-group rules, world-open port 22, OS user.",
    discussion: """
      Reads DescribeInstances and DescribeSecurityGroups only; never changes anything. Exit status: 0 \
      every target can work (warnings allowed), 2 bad input, 3 some target cannot work.
      """)

  @OptionGroup var options: PlaybookOptions
  @OptionGroup var preflight: PreflightOptions

  @Option(name: .long, help: "Output format: text or json.")
  var format: ListFormat = .text

  func run() async throws {
    guard options.inputs.inventoryPath != nil else {
      throw ValidationError("sixty preflight needs an inventory: pass -i INVENTORY (or set SIXTY_INVENTORY).")
    }
    let inputs = await InventoryResolver.load(options.inputs, ec2: options.ec2.settings)
    let outcome = PlanLoader.load(inputs)
    printDiagnostics(outcome.diagnostics.filter { $0.kind != .policy || outcome.plan == nil })
    guard let plan = outcome.plan else { throw ExitCode(outcome.exitCode) }
    let findings = try await PreflightCheck.run(
      plan: plan, inputs: inputs, options: preflight, ec2: options.ec2)
    let hosts = Set(plan.plays.flatMap { $0.hosts.filter { $0.batch != nil }.map(\.host.name) }).count
    if format == .json {
      var w = JSONWriter()
      PreflightCheck.json(findings, into: &w)
      writeStandardOutput(w.bytes + [UInt8(ascii: "\n")])
    } else {
      writeStandardOutput(Array(PreflightCheck.text(findings, hosts: hosts).utf8))
    }
    throw ExitCode(findings.contains { $0.severity == .error } ? 3 : 0)
  }
}
