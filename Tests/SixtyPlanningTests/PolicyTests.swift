import Foundation
import SixtyCore
import SixtyPlanning
import SixtyPolicy
import Testing

@Suite struct PolicyTests {
  func policy(_ yaml: String) -> (Policy, [String]) {
    let (node, diagnostics) = YAMLLoader.parse(text: yaml, file: "policy.yml")
    var reader = NodeReader()
    reader.diagnostics.append(contentsOf: diagnostics)
    let policy = PolicyParser.parse(node!, what: "the policy file", reader: &reader)
    return (policy, reader.diagnostics.all.map(\.description))
  }

  @Test(arguments: [
    ([Quantity.count(1), .percent(25), .percent(100)], 10, [1, 2, 7]),
    ([.count(2)], 5, [2, 2, 1]),
    ([.percent(30)], 10, [3, 3, 3, 1]),
    ([.percent(1)], 10, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),  // rounds down but at least 1
    ([], 4, [4]),
  ])
  func batchSizes(batches: [Quantity], total: Int, expected: [Int]) {
    var p = Policy.defaults
    p.batches = batches
    #expect(p.batchSizes(for: total) == expected)
  }

  @Test func organisationBatchesCapStepByStep() {
    var p = Policy.defaults
    p.batches = [.percent(50)]
    p.orgBatches = [.count(1), .count(3)]
    #expect(p.batchSizes(for: 10) == [1, 3, 3, 3])
  }

  @Test func failureThresholds() {
    var p = Policy.defaults
    p.maxFailures = .percent(10)
    #expect(p.failureThreshold(for: 50) == 5)
    #expect(p.failureThreshold(for: 5) == 0)
    p.orgMaxFailures = .count(2)
    #expect(p.failureThreshold(for: 50) == 2)
    #expect(Policy.defaults.failureThreshold(for: 50) == nil)
  }

  @Test func hostLocksParseAndTheOrganisationsRefuseWins() {
    let (org, orgDiagnostics) = policy("host_lock: refuse\ntimeouts: {lock: 5m}\n")
    #expect(orgDiagnostics.isEmpty)
    #expect(org.hostLock == .refuse)
    #expect(org.lockTimeout == .minutes(5))
    let (own, _) = policy("host_lock: wait\ntimeouts: {lock: 20m}\n")
    let (resolved, warnings) = PolicyResolver.resolve(organisation: org, play: own)
    #expect(resolved.hostLock == .refuse)
    #expect(resolved.lockTimeout == .minutes(5))
    #expect(warnings.count == 1)
    let (defaults, _) = PolicyResolver.resolve(organisation: nil, play: nil)
    #expect(defaults.hostLock == .wait)
    #expect(defaults.lockTimeout == .minutes(10))
    let (_, bad) = policy("host_lock: later\n")
    #expect(bad == ["policy.yml:1:12: error: unknown host_lock 'later'; expected wait or refuse."])
  }

  @Test func parsesEveryField() {
    let (p, diagnostics) = policy(
      """
      concurrency: 5
      batches: [1, 25%]
      max_failures: 10%
      timeouts: {connect: 5s, task: 10m, run: 2h}
      retries: 2
      retry_delay: 10s
      push: {rate: 5, burst: 10, ttl: 30s, margin: 10s, key_type: ed25519}
      host_parallelism: 3
      host_key_checking: strict
      windows:
        - {name: nightly, schedule: "0 2 * * *", duration: 2h, cutoff: 30m, timezone: Europe/Berlin}
      commands:
        deny: ["rm -rf /", {regex: "^shutdown", reason: no}]
      hosts:
        require_approval: [env=prod]
      """)
    #expect(diagnostics == [])
    #expect(p.concurrency == 5)
    #expect(p.batches == [.count(1), .percent(25)])
    #expect(p.maxFailures == .percent(10))
    #expect(p.runTimeout == .hours(2))
    #expect(p.pushRate == 5)
    #expect(p.keyTTL == .seconds(30))
    #expect(p.keyType == .ed25519)
    #expect(p.hostKeyPolicy == .strict)
    #expect(p.windows.first?.timeZone == "Europe/Berlin")
    #expect(p.denyCommands.count == 2)
    #expect(p.requireApproval.first?.selector.text == "env=prod")
  }

  @Test func invalidPolicy() {
    let (_, diagnostics) = policy(
      """
      concurency: 5
      batches: [0, x]
      push: {ttl: 30s, margin: 40s}
      host_parallelism: 20
      windows:
        - {schedule: "every night", duration: 1h, timezone: Mars/Base}
      commands:
        deny: [{regex: "(unclosed"}]
      """)
    #expect(
      diagnostics == [
        "policy.yml:1:1: error: unknown key 'concurency' in the policy file (did you mean 'concurrency'?); expected one of: concurrency, batches, max_failures, timeouts, retries, retry_delay, push, host_parallelism, host_key_checking, ssh_client, host_lock, windows, commands, hosts.",
        "policy.yml:2:11: error: a batch of zero hosts never finishes; expected at least 1 or 1%.",
        "policy.yml:2:14: error: expected a number of hosts or a percentage for each entry of 'batches' (like 2 or 10%), found 'x'.",
        "policy.yml:4:19: error: 'host_parallelism' is 20; expected a number from 1 to 9.",
        "policy.yml:6:16: error: the window schedule 'every night' is not a cron expression; expected five fields like '0 2 * * *', a macro like '@daily', or 'cron(…)'.",
        "policy.yml:6:55: error: unknown time zone 'Mars/Base'; expected an IANA name like 'UTC' or 'Europe/Berlin'.",
        "policy.yml:8:18: error: invalid regular expression /(unclosed/: expected an ICU regular expression.",
        "policy.yml:3:26: error: 'push.margin' (40s) must be shorter than 'push.ttl' (30s) so a pushed key leaves time to authenticate.",
      ])
  }

  @Test func keyTypesParseDefaultToTheEndpointsChoiceAndTheOrganisationsWins() {
    #expect(Policy.defaults.keyType == nil)
    #expect(policy("push: {key_type: rsa4096}").0.keyType == .rsa4096)
    let bad = policy("push:\n  key_type: dsa\n").1.map(\.description)
    #expect(
      bad == [
        "policy.yml:2:13: error: unknown push.key_type 'dsa'; expected one of: rsa, rsa4096, ed25519, ecdsa."
      ])
    var org = Policy()
    org.keyType = .ed25519
    org.locations["push.key_type"] = SourceLocation(file: "org.yml", line: 2, column: 13)
    var play = Policy()
    play.keyType = .rsa
    play.locations["push.key_type"] = SourceLocation(file: "play.yml", line: 5, column: 23)
    let (effective, diagnostics) = PolicyResolver.resolve(organisation: org, play: play)
    #expect(effective.keyType == .ed25519)
    #expect(
      diagnostics.map(\.description) == [
        "play.yml:5:23: warning: the play's push.key_type 'rsa' differs from the organisation policy's 'ed25519' (org.yml:2:13); using 'ed25519'."
      ])
    #expect(PolicyResolver.resolve(organisation: nil, play: play).0.keyType == .rsa)
    #expect(PolicyResolver.resolve(organisation: nil, play: nil).0.keyType == nil)
  }

  @Test func pushRateIsACeilingOnlyWhenAPolicySetsOne() throws {
    let (plain, _) = PolicyResolver.resolve(organisation: nil, play: nil)
    #expect(plain.pushRate == nil && plain.pushBurst == nil)
    let (own, _) = PolicyResolver.resolve(organisation: nil, play: policy("push: {rate: 40}").0)
    #expect(own.pushRate == 40 && own.pushBurst == nil)
    let text = PlanTextRenderer.pacingDescription(own)
    #expect(text.hasSuffix("; never above 40 pushes/s (push.rate, burst 40)"), "\(text)")
    var org = Policy()
    org.pushRate = 30
    org.locations["push.rate"] = SourceLocation(file: "org.yml", line: 3, column: 9)
    var play = Policy()
    play.pushRate = 100
    play.pushBurst = 5
    let (capped, diagnostics) = PolicyResolver.resolve(organisation: org, play: play)
    #expect(capped.pushRate == 30 && capped.pushBurst == 5)
    #expect(diagnostics.map(\.description).contains { $0.contains("push.rate 100/s is looser") })
  }

  @Test func organisationPolicyWinsOverLooserPlayValues() {
    var org = Policy()
    org.concurrency = 10
    org.taskTimeout = .minutes(30)
    org.keyTTL = .seconds(60)
    org.hostKeyPolicy = .strict
    org.locations["concurrency"] = SourceLocation(file: "org.yml", line: 1, column: 14)
    var play = Policy()
    play.concurrency = 50
    play.taskTimeout = .minutes(5)
    play.hostKeyPolicy = .off
    play.locations["concurrency"] = SourceLocation(file: "play.yml", line: 4, column: 16)
    let (effective, diagnostics) = PolicyResolver.resolve(organisation: org, play: play)
    #expect(effective.concurrency == 10)  // capped
    #expect(effective.taskTimeout == .minutes(5))  // tighter: kept
    #expect(effective.hostKeyPolicy == .strict)
    #expect(
      diagnostics.map(\.description) == [
        "play.yml:4:16: warning: the play's concurrency 50 is looser than the organisation policy's 10 (org.yml:1:14); using 10.",
        "sixty: warning: the play's host_key_checking 'off' is looser than the organisation policy's 'strict'; using 'strict'.",
      ])
  }

  @Test func commandMatcher() {
    let matcher = CommandMatcher([
      CommandRule(pattern: .literal("rm -rf /")), CommandRule(pattern: .regex("mkfs(\\.[a-z0-9]+)?\\s")),
    ])
    #expect(matcher.firstMatch("sudo rm   -rf /")?.pattern == .literal("rm -rf /"))
    #expect(matcher.firstMatch("mkfs.ext4 /dev/sdb") != nil)
    #expect(matcher.firstMatch("echo ok") == nil)
  }

  @Test func pushModeParsesAndTheOrganisationsWins() {
    #expect(policy("push: {mode: certificate}").0.loginMode == .certificate)
    #expect(
      policy("push:\n  mode: cert\n").1 == [
        "policy.yml:2:9: error: unknown push.mode 'cert'; expected one of: key, certificate."
      ])
    var org = Policy()
    org.loginMode = .key
    var play = Policy()
    play.loginMode = .certificate
    let (effective, diagnostics) = PolicyResolver.resolve(organisation: org, play: play)
    #expect(effective.loginMode == .key)
    #expect(diagnostics.map(\.description).contains { $0.contains("push.mode 'certificate' differs") })
    #expect(PolicyResolver.resolve(organisation: nil, play: nil).0.loginMode == nil)
    #expect(PlanTextRenderer.modeDescription(nil).hasPrefix("as the endpoint prefers"))
    #expect(PlanTextRenderer.modeDescription(.certificate).contains("TrustedUserCAKeys"))
  }
}
