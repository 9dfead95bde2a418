import Foundation
import SixtyAgentCore
import SixtyCore
import SixtyEC2
import SixtyPlanning
import SixtyPlaybook

/// What `sixty preflight` assumes about where Sixty's connections come from.
public struct PreflightSettings: Sendable {
  /// This runner's addresses or networks as the instances see them; empty for its interfaces'.
  public var runner: [String] = []
  /// The bastion's addresses or networks, for proxy_jump inventories.
  public var bastion: [String] = []
  /// Security groups whose members may connect.
  public var sourceGroups: [String] = []
  /// AWS's ip-ranges.json; nil for the cached copy, if any.
  public var ipRanges: String?
  public var ec2 = EC2Settings()

  public init() {}

  func sources() throws(RunFailure) -> PreflightSources {
    var prefixes: [String: [CIDR]] = [:]
    // A copy kept in the cache directory is used when none is named.
    let cached = EC2Inventory.defaultCacheDirectory() + "/ip-ranges.json"
    let ipRanges = self.ipRanges ?? (FileManager.default.fileExists(atPath: cached) ? cached : nil)
    if let ipRanges {
      guard let data = FileManager.default.contents(atPath: ipRanges) else {
        throw RunFailure("cannot read the ip-ranges file \(ipRanges).", status: .badInput)
      }
      do {
        prefixes = try PreflightSources.instanceConnectPrefixes(ipRangesJSON: data)
      } catch {
        throw RunFailure("\(ipRanges): \(error)", status: .badInput)
      }
    }
    let runnerCIDRs = runner.isEmpty ? Preflight.localAddresses() : runner.compactMap { CIDR($0) }
    return PreflightSources(
      runner: runnerCIDRs, bastion: bastion.compactMap { CIDR($0) }, groups: sourceGroups,
      instanceConnectPrefixes: prefixes)
  }
}

/// Checks the targets of a plan that come from an aws-ec2 inventory.
public enum PreflightCheck {
  /// The findings for every targeted host of an aws-ec2 inventory's plan.
  public static func run(plan: Plan, inputs: PlanLoader.Inputs, settings: PreflightSettings)
    async throws(RunFailure)
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
      throw RunFailure(
        "preflight checks EC2 security groups and needs an aws-ec2 inventory (source: aws-ec2); \(inputs.inventoryPath ?? "no inventory") is a static one.",
        status: .badInput)
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
        let client = try await InventoryResolver.client(for: source, options: settings.ec2, profile: nil)
        for group in try await client.describeSecurityGroups(ids: ids) { groups[group.id] = group }
      } catch {
        throw RunFailure(
          "cannot read the security groups \(ids.joined(separator: ", ")): \(error)", status: .badInput)
      }
    }
    return Preflight.check(hosts: targets, groups: groups, sources: try settings.sources())
  }

  /// The findings as `sixty preflight` prints them.
  public static func text(_ findings: [PreflightFinding], hosts: Int) -> String {
    var text = "\nPreflight (\(hosts) host\(hosts == 1 ? "" : "s"), nothing changed):\n"
    if findings.isEmpty { return text + "  every target is reachable as planned; no findings.\n" }
    for finding in findings { text += "  \(finding)\n" }
    let errors = Set(findings.filter { $0.severity == .error }.map(\.host)).count
    let warnings = findings.filter { $0.severity == .warning }.count
    text +=
      "\(errors) host\(errors == 1 ? "" : "s") cannot work as things are; \(warnings) warning\(warnings == 1 ? "" : "s").\n"
    return text
  }

  /// The findings as a JSON array.
  public static func json(_ findings: [PreflightFinding], into w: inout JSONWriter) {
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
