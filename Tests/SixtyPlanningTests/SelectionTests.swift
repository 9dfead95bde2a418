import SixtyCore
import SixtyPlanning
import SixtyPlaybook
import Testing

/// Ansible's pattern operators in plays and `--limit`, and what an empty selection says.
@Suite struct SelectionTests {
  let play = "name: p\nhosts: all\ntasks:\n  - {name: t, shell: 'true'}\n"

  func hosts(_ outcome: PlanLoader.Outcome) -> [String] {
    outcome.plan?.plays.flatMap { $0.hosts.map(\.host.name) } ?? []
  }

  @Test func playsAndLimitsTakeAnsiblePatterns() throws {
    let (outcome, messages) = try plan(
      ["play.yml": "name: p\nhosts: web:db:!web-2\ntasks:\n  - {name: t, shell: 'true'}\n", "inv.yml": fleet])
    #expect(messages.isEmpty)
    #expect(hosts(outcome) == ["web-1", "web-3", "web-4", "web-5", "db-1"])
    let limited = try plan(
      ["play.yml": play, "inv.yml": fleet],
      options: PlanOptions(limit: try HostSelector(union: ["web-1", "role=db"]), defaultUser: "ops"))
    #expect(hosts(limited.0) == ["web-1", "db-1"])
  }

  @Test func ansibleVariablesReachTemplatesWithSixtysPrecedence() throws {
    let fixture = try Fixture([
      "play.yml": """
      name: p
      hosts: web:&prod
      tasks:
        - {name: t, command: [echo, "{{ http_port }}", "{{ ntp }}", "{{ domain }}", "{{ tier }}", "{{ host.port }}"]}
      """,
      "hosts": """
      [web]
      web1 http_port=8080 ansible_port=2222 instance_id=i-0000000000000001
      web2 ansible_user=deploy instance_id=i-0000000000000002
      [prod:children]
      web
      [prod:vars]
      ntp=ntp.example.com
      tier=parent
      http_port=80
      [web:vars]
      tier=child
      [all:vars]
      domain=example.com
      """,
    ])
    defer { fixture.remove() }
    let outcome = fixture.load(inventory: "hosts")
    #expect(fixture.messages(outcome).isEmpty)
    let hosts = try #require(outcome.plan?.plays.first?.hosts)
    #expect(hosts.map(\.host.name) == ["web1", "web2"])
    #expect(hosts[0].steps[0].rendered?.display == "echo 8080 ntp.example.com example.com child 2222")
    #expect(hosts[1].steps[0].rendered?.display == "echo 80 ntp.example.com example.com child 22")
    #expect(hosts[1].user == "deploy")
    #expect(hosts[0].user == "ops")
  }

  @Test func policyHostRulesTakePatterns() throws {
    let (outcome, _) = try plan(
      [
        "play.yml": play, "inv.yml": fleet,
        "policy.yml": "hosts:\n  require_approval: ['web:!web-1:!web-2']\n",
      ],
      policy: "policy.yml")
    let refused = Set(try #require(outcome.plan).refusals.map(\.host))
    #expect(refused == ["web-3", "web-4", "web-5"])
  }

  @Test func anEmptyLimitExplainsTheAnd() throws {
    let (outcome, messages) = try plan(
      ["play.yml": play, "inv.yml": fleet],
      options: PlanOptions(limit: try HostSelector(parsing: "web-1,db-1"), defaultUser: "ops"))
    #expect(outcome.plan == nil)
    #expect(
      messages == [
        "sixty: error: --limit 'web-1,db-1' matched no host of inv.yml; 'web-1,db-1' means web-1 AND db-1; for any of them, write 'web-1:db-1' or pass --limit once for each; expected at least one host."
      ])
  }

  @Test func anEmptySelectionSuggestsNearTagValues() throws {
    let (_, messages) = try plan(
      ["play.yml": "name: p\nhosts: role=wbe\ntasks:\n  - {name: t, shell: 'true'}\n", "inv.yml": fleet])
    #expect(
      messages == [
        "play.yml:2:8: error: the play 'p' targets no hosts: 'role=wbe' matched nothing in inv.yml; did you mean 'role=web' instead of 'role=wbe'; expected at least one host."
      ])
  }
}
