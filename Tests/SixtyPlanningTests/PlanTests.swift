import Foundation
import SixtyCore
import SixtyPlanning
import SixtyPlaybook
import Testing

@Suite struct PlanTests {
  let rolling = """
    name: rolling
    hosts: web
    policy:
      concurrency: 2
      batches: [1, 50%]
      max_failures: 1
    tasks:
      - {name: drain, shell: "lb drain {{ host.name }}"}
      - {name: upgrade, command: [apt-get, -y, upgrade], become: true, needs: [drain], timeout: 10m, retries: 2}
      - {name: undrain, shell: "lb undrain {{ host.name }}", needs: [upgrade]}
      - {name: only-db, shell: x, when: "host.tags.role == 'db'"}
      - {name: once, shell: "announce", run_once: true}
    """

  @Test func batchesOrderAndRendering() throws {
    let (outcome, messages) = try plan(["play.yml": rolling, "inv.yml": fleet])
    #expect(messages == [])
    let play = try #require(outcome.plan?.plays.first)
    #expect(
      play.batches.map { $0.map { play.hosts[$0].host.name } } == [
        ["web-1"], ["web-2", "web-3"], ["web-4", "web-5"],
      ])
    #expect(play.failureThreshold == 1)
    let web2 = play.hosts[1]
    #expect(web2.order(in: play) == ["drain", "upgrade", "undrain"])
    #expect(web2.steps[0].rendered?.display == "lb drain web-2")
    #expect(web2.steps[1].rendered?.display == "apt-get -y upgrade")
    #expect(web2.steps[3].status == .skipped("when: host.tags.role == 'db' is false"))
    #expect(web2.steps[4].status == .skipped("run_once: runs on web-1 only"))
    #expect(play.hosts[0].order(in: play) == ["drain", "upgrade", "undrain", "once"])
  }

  @Test func limitNarrowsTargets() throws {
    let options = PlanOptions(limit: try HostSelector(parsing: "web-[45]"), defaultUser: "ops")
    let (outcome, _) = try plan(["play.yml": rolling, "inv.yml": fleet], options: options)
    let play = try #require(outcome.plan?.plays.first)
    #expect(play.hosts.map(\.host.name) == ["web-4", "web-5"])
  }

  @Test func jsonHasTheDocumentedShape() throws {
    let (outcome, _) = try plan(["play.yml": rolling, "inv.yml": fleet])
    let plan = try #require(outcome.plan)
    let data = Data(PlanJSONRenderer.render(plan))
    let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    #expect(object["batches"] as? [[String]] == [["web-1"], ["web-2", "web-3"], ["web-4", "web-5"]])
    let hosts = try #require(object["hosts"] as? [String: [String: Any]])
    #expect(hosts["web-1"]?["order"] as? [String] == ["drain", "upgrade", "undrain", "once"])
    #expect(hosts["web-3"]?["order"] as? [String] == ["drain", "upgrade", "undrain"])
    let policy = try #require(object["policy"] as? [String: Any])
    #expect(policy["concurrency"] as? Int == 2)
    #expect(policy["batch_sizes"] as? [Int] == [1, 2, 2])
    #expect(policy["failure_threshold"] as? Int == 1)
    let pushPolicy = try #require(policy["push"] as? [String: Any])
    // No key type or rate in the policy: the endpoint chooses the type, pacing is adaptive.
    #expect(pushPolicy["key_type"] is NSNull)
    #expect(pushPolicy["key_type_from"] as? String == "endpoint")
    #expect(pushPolicy["pacing"] as? String == "adaptive")
    #expect(pushPolicy["rate"] is NSNull && pushPolicy["burst"] is NSNull)
    let plays = try #require(object["plays"] as? [[String: Any]])
    let playHosts = try #require(plays[0]["hosts"] as? [String: [String: Any]])
    let push = try #require(playHosts["web-2"]?["push"] as? [String: Any])
    #expect(push["batch"] as? Int == 1)
    #expect(push["user"] as? String == "ops")
    let tasks = try #require(playHosts["web-2"]?["tasks"] as? [[String: Any]])
    #expect(tasks[1]["argv"] as? [String] == ["apt-get", "-y", "upgrade"])
    #expect(tasks[3]["status"] as? String == "skipped")
  }

  @Test func multiPlayJSONConcatenatesInRunOrder() throws {
    let (outcome, messages) = try plan([
      "play.yml": """
      - name: first
        hosts: db
        tasks: [{name: backup, shell: x}]
      - name: second
        hosts: web-1
        tasks: [{name: deploy, shell: y}]
      - name: third
        hosts: db
        tasks: [{name: vacuum, shell: z}]
      """,
      "inv.yml": fleet,
    ])
    #expect(messages == [])
    let data = Data(PlanJSONRenderer.render(try #require(outcome.plan)))
    let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    #expect(object["batches"] as? [[String]] == [["db-1"], ["web-1"], ["db-1"]])
    let hosts = try #require(object["hosts"] as? [String: [String: Any]])
    #expect(hosts["db-1"]?["order"] as? [String] == ["backup", "vacuum"])
  }

  @Test func denyRuleRefusesWithExitThree() throws {
    let (outcome, messages) = try plan(
      [
        "play.yml":
          "hosts: web\ntasks:\n  - {name: wipe, shell: \"rm -rf /\"}\n  - {name: ok, shell: \"true\"}\n",
        "inv.yml": fleet,
        "policy.yml": "commands:\n  deny:\n    - \"rm -rf /\"\n",
      ], policy: "policy.yml")
    #expect(outcome.exitCode == 3)
    #expect(
      messages == [
        "play.yml:3:12: error: policy refuses task 'wipe' on hosts web-1, web-2, web-3 and 2 more in play 'play 1': the command matches the denied pattern 'rm -rf /' at policy.yml:3:7."
      ])
    let play = try #require(outcome.plan?.plays.first)
    #expect(play.hosts[0].steps[1].status == .run)
  }

  @Test func approvalRuleRefusesUnlessApproved() throws {
    let files = [
      "play.yml": "hosts: all\ntasks:\n  - {name: a, shell: x}\n",
      "inv.yml": fleet,
      "policy.yml": "hosts:\n  require_approval: [role=db]\n",
    ]
    let (refused, messages) = try plan(files, policy: "policy.yml")
    #expect(refused.exitCode == 3)
    #expect(
      messages == [
        "play.yml:1:8: error: policy refuses host db-1 in play 'play 1': the host matches 'role=db', which requires --approve."
      ])
    let refusedPlay = try #require(refused.plan?.plays.first)
    #expect(refusedPlay.batches.flatMap { $0 }.count == 6)  // db-1 is not scheduled
    let (approved, approvedMessages) = try plan(
      files, policy: "policy.yml", options: PlanOptions(approve: true, defaultUser: "ops"))
    #expect(approved.exitCode == 0)
    #expect(approvedMessages == [])
  }

  @Test func textShowsBatchesKeysAndGroupsIdenticalHosts() throws {
    let (outcome, _) = try plan([
      "play.yml": "hosts: web\npolicy: {batches: [2]}\ntasks:\n  - {name: a, command: [uptime]}\n",
      "inv.yml": fleet,
    ])
    let text = PlanTextRenderer.render(try #require(outcome.plan))
    #expect(text.contains("  batch 1/3 (2): web-1 web-2\n"))
    #expect(text.contains("  batch 3/3 (1): web-5\n"))
    #expect(
      text.contains(
        "web-1 (10.0.0.1:22, user ops, batch 1) and 4 more with the same steps: web-2, web-3, web-4, web-5\n")
    )
    #expect(text.contains("    1. a: command: uptime\n"))
    #expect(
      text.contains(
        "keys: one ephemeral key for the run, of the fastest type the endpoint takes (ECDSA P-256 for a sixty broker"
      ))
    #expect(text.contains("  pacing: adaptive, shared by every host of the run: "))
    #expect(text.contains("; no ceiling (push.rate sets one).\n"))
    #expect(text.hasSuffix("1 play, 5 hosts, 5 task runs, 0 skipped. Nothing has run: this is a preview.\n"))
  }

  @Test func dotShowsTheGraph() throws {
    let (outcome, _) = try plan(["play.yml": rolling, "inv.yml": fleet])
    let dot = PlanDotRenderer.render(try #require(outcome.plan))
    #expect(dot.hasPrefix("digraph plan {"))
    #expect(dot.contains("p0_t0 -> p0_t1;"))
    #expect(dot.contains("p0_t1 -> p0_t2;"))
    #expect(dot.contains("label=\"play 1: rolling (5 hosts, 3 batches)\""))
  }

  @Test func variablePrecedence() throws {
    let (outcome, messages) = try plan(
      [
        "play.yml":
          "hosts: all\nvars: {b: play}\ntasks:\n  - {name: a, shell: \"{{ a }} {{ b }} {{ c }} {{ d }}\"}\n",
        "inv.yml": """
        vars: {a: inventory, b: inventory, c: inventory, d: inventory}
        hosts:
          h1: {instance_id: i-00000000000000001, vars: {c: host}, tags: {t: x}}
        groups:
          g1: {match: t=x, vars: {a: g1, d: g1}}
          g2: {hosts: [h1], vars: {a: g2}}
        """,
      ], options: PlanOptions(extraVars: ["d": .string("extra")], defaultUser: "ops"))
    #expect(messages == [])
    // extra > play > host > later group > earlier group > inventory
    #expect(outcome.plan?.plays[0].hosts[0].steps[0].rendered?.display == "g2 play host extra")
  }

  @Test func examplePlaybooksAreValid() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("playbooks")
    let files = try FileManager.default.contentsOfDirectory(atPath: root.path).filter {
      $0.hasSuffix(".yml") && !["inventory.yml", "policy.yml"].contains($0) && !$0.hasPrefix("inventory")
        && !$0.hasPrefix("broker") && !$0.hasPrefix("jobs")
    }
    #expect(files.count >= 4)
    for file in files {
      let inventory =
        FileManager.default.fileExists(atPath: root.appendingPathComponent("inventory-\(file)").path)
        ? "inventory-\(file)" : "inventory.yml"
      let outcome = PlanLoader.load(
        PlanLoader.Inputs(
          playbookPath: root.appendingPathComponent(file).path,
          inventoryPath: root.appendingPathComponent(inventory).path,
          policyPath: nil, options: PlanOptions(defaultUser: "ops")))
      #expect(outcome.diagnostics.filter { $0.severity != .note }.map(\.description) == [], "\(file)")
      #expect(outcome.exitCode == 0, "\(file)")
      let plan = try #require(outcome.plan, "\(file)")
      #expect(!plan.plays.isEmpty)
    }
  }
}
