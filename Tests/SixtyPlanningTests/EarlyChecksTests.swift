import SixtyCore
import SixtyPlanning
import SixtyPlaybook
import Testing

/// Problems found when a playbook is validated or planned, not when its run reaches them: hosts a
/// key cannot be pushed to, and every stage's problems in one pass.
@Suite struct EarlyChecksTests {
  let inventory = """
    hosts:
      web-1: {address: 10.0.0.1, instance_id: i-00000000000000001, tags: {role: web}}
      web-2: {address: 10.0.0.2, tags: {role: web}}
      db-1:
        address: 10.0.1.1
        tags: {role: db}
    groups:
      web: {match: role=web}
    """

  @Test func aHostWithoutAnInstanceIDIsReportedAtItsInventoryEntry() throws {
    let (outcome, messages) = try plan([
      "play.yml": "hosts: all\ntasks:\n  - {name: a, shell: x}\n",
      "inv.yml": inventory,
    ])
    // A warning: the run goes ahead, and those hosts fail at their turn.
    #expect(outcome.exitCode == 0)
    #expect(outcome.plan != nil)
    #expect(
      messages == [
        "inv.yml:3:3: warning: the host 'web-2' has no instance_id, and the play 'play 1' pushes its key through EC2 Instance Connect (or a broker) before connecting, so it will fail at its turn; expected 'instance_id: i-…' in its inventory entry (an aws-ec2 inventory gives every host one).",
        "inv.yml:4:3: warning: the host 'db-1' has no instance_id, and the play 'play 1' pushes its key through EC2 Instance Connect (or a broker) before connecting, so it will fail at its turn; expected 'instance_id: i-…' in its inventory entry (an aws-ec2 inventory gives every host one).",
      ])
  }

  @Test func onlyHostsAKeyIsPushedToNeedAnInstanceID() throws {
    // web-1 has one; --limit and the play's selector leave the others out.
    let (limited, limitedMessages) = try plan(
      ["play.yml": "hosts: web\ntasks:\n  - {name: a, shell: x}\n", "inv.yml": inventory],
      options: PlanOptions(limit: try HostSelector(parsing: "web-1"), defaultUser: "ops"))
    #expect(limitedMessages == [])
    #expect(limited.exitCode == 0)
    // Without key pushes there is nothing to check.
    var options = PlanOptions(defaultUser: "ops")
    options.pushesKeys = false
    let (unpushed, unpushedMessages) = try plan(
      ["play.yml": "hosts: all\ntasks:\n  - {name: a, shell: x}\n", "inv.yml": inventory], options: options)
    #expect(unpushedMessages == [])
    #expect(unpushed.exitCode == 0)
  }

  @Test func aHostInSeveralPlaysIsReportedOnceAndALargeFleetIsSummarised() throws {
    var hosts = "hosts:\n"
    for i in 1...25 { hosts += "  h-\(i): {address: 10.0.0.\(i)}\n" }
    let (_, messages) = try plan([
      "play.yml":
        "- hosts: all\n  tasks:\n    - {name: a, shell: x}\n- hosts: h-1\n  tasks:\n    - {name: b, shell: x}\n",
      "inv.yml": hosts,
    ])
    #expect(messages.count == 21)
    #expect(messages.first?.hasPrefix("inv.yml:2:3: warning: the host 'h-1' has no instance_id") == true)
    #expect(
      messages.last
        == "inv.yml:22:3: warning: 5 more targeted hosts have no instance_id ('h-21', 'h-22', 'h-23', 'h-24', 'h-25'); expected 'instance_id: i-…' for each."
    )
  }

  /// Parsing recovers per task, so the targets and templates of what parsed are still checked:
  /// an unknown key, an unknown filter, an unknown variable and an unknown group, in one pass,
  /// sorted by position.
  @Test func everyStageReportsItsProblemsInOnePass() throws {
    let (outcome, messages) = try plan([
      "play.yml": """
      - hosts: web
        tasks:
          - name: a
            shell: echo {{ missing }}
            retires: 2
          - name: b
            shell: echo {{ host.name | shout }}
          - name: c
            shell: echo ok
            needs: [b]
      - hosts: webs
        tasks:
          - {name: d, shell: x}
      """,
      "inv.yml": fleet,
    ])
    #expect(outcome.exitCode == 2)
    #expect(outcome.playbook == nil && outcome.plan == nil)
    #expect(
      messages == [
        "play.yml:4:19: error: unknown variable 'missing' in task 'a' for host web-1 and 4 other hosts; define it in the play's vars, the inventory, or with -e missing=VALUE.",
        "play.yml:5:7: error: unknown key 'retires' in task 1 (did you mean 'retries'?); expected one of: name, command, shell, script, upload, needs, become, become_user, env, cwd, timeout, retries, retry_delay, ok_codes, on_failure, when, run_once.",
        "play.yml:7:19: error: unknown filter 'shout'; expected one of: default, quote, upper, lower, join.",
        "play.yml:11:10: error: the play 'play 2' targets 'webs', which is neither a group nor a host of inv.yml; did you mean 'web'?",
      ])
  }

  @Test func aBadPolicyFileDoesNotHideThePlaybooksProblems() throws {
    let fixture = try Fixture([
      "play.yml": "hosts: web\ntasks:\n  - {name: a, shell: \"echo {{ nope }}\"}\n",
      "inv.yml": fleet,
      "policy.yml": "concurency: 3\n",
    ])
    defer { fixture.remove() }
    let outcome = fixture.load(policy: "policy.yml")
    let messages = fixture.messages(outcome)
    #expect(outcome.exitCode == 2 && outcome.plan == nil)
    #expect(messages.count == 2)
    #expect(
      messages.first
        == "play.yml:3:28: error: unknown variable 'nope' in task 'a' for host web-1 and 4 other hosts; define it in the play's vars, the inventory, or with -e nope=VALUE."
    )
    #expect(messages.last?.hasPrefix("policy.yml:1:1: error: unknown key 'concurency'") == true)
  }

  @Test func anUnclosedParenthesisIsNamed() throws {
    let (_, messages) = try plan([
      "play.yml": """
      hosts: web
      tasks:
        - name: a
          shell: echo {{ dir | default('/srv' }}
        - name: b
          shell: x
          when: (host.tags.role == 'web' and x is defined
        - name: c
          shell: x
          when: host.tags.role in ['web', 'db'
      """,
      "inv.yml": fleet,
    ])
    #expect(
      messages == [
        "play.yml:4:17: error: unclosed '(' opened at column 33 in the filter 'default('/srv''; expected ')' after its argument, like default('x').",
        "play.yml:7:52: error: invalid condition for task 'b': unclosed '(' opened at column 11; expected ')' before the end of the condition.",
        "play.yml:10:41: error: invalid condition for task 'c': unclosed '[' opened at column 29; expected ']' to end the list.",
      ])
  }

  @Test(arguments: [
    (
      "hosts: web\ntasks:\n  - name: a\n    shell: {{ host.name }}\n",
      "play.yml:4:12: error: an unquoted '{{ … }}' is read by YAML as a mapping, not as text; quote the whole value, like \"{{ name }}\"."
    ),
    (
      "hosts: web\ntasks:\n  - {name: a, command: [echo, {{ host.name }}]}\n",
      "play.yml:3:31: error: an unquoted '{{ … }}' is read by YAML as a mapping, not as text; quote the whole value, like \"{{ name }}\"."
    ),
    (
      "hosts: web\ntasks:\n  - name: a\n    shell: {{ host.name }} is up\n",
      "play.yml:4:12: error: invalid YAML: did not find expected key; a '{{' that starts a value is read by YAML as a mapping: quote the whole value, like \"{{ name }} …\"."
    ),
  ])
  func anUnquotedTemplateInYAMLGetsAHint(yaml: String, expected: String) throws {
    let (outcome, messages) = try plan(["play.yml": yaml, "inv.yml": fleet])
    #expect(outcome.exitCode == 2)
    #expect(messages == [expected])
  }
}
