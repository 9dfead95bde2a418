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

  /// What preflight is to assume, for the library.
  func settings(ec2: EC2Options) -> PreflightSettings {
    var settings = PreflightSettings()
    settings.runner = runner
    settings.bastion = bastion
    settings.sourceGroups = sourceGroups
    settings.ipRanges = ipRanges
    settings.ec2 = ec2.settings
    return settings
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
    let (plan, inputs, _) = try await options.plan(for: "preflight")
    let findings = try await PreflightCheck.run(
      plan: plan, inputs: inputs, settings: preflight.settings(ec2: options.ec2))
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
