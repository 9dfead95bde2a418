import SixtyCore
import SixtyPlanning
import SixtyPlaybook
import Testing

/// Every playbook rule, valid and invalid, with the exact diagnostic text.
@Suite struct PlaybookDiagnosticsTests {
  @Test func validPlaybookIsClean() throws {
    let (outcome, messages) = try plan([
      "play.yml": """
      name: ok
      hosts: web
      tasks:
        - {name: a, command: [echo, "{{ host.name }}"]}
      """,
      "inv.yml": fleet,
    ])
    #expect(messages == [])
    #expect(outcome.exitCode == 0)
  }

  @Test(arguments: [
    (
      "hosts: web\ntasks:\n  - {name: a, comand: [x]}\n",
      [
        "play.yml:3:5: error: the task 'a' has no action; expected one of: command, shell, script, upload.",
        "play.yml:3:15: error: unknown key 'comand' in task 1 (did you mean 'command'?); expected one of: name, command, shell, script, upload, needs, become, become_user, env, cwd, timeout, retries, retry_delay, ok_codes, on_failure, when, run_once.",
      ]
    ),
    (
      "hosts: web\ntasks:\n  - {name: a, shell: x}\n  - {name: a, shell: y}\n",
      [
        "play.yml:4:12: error: the task name 'a' is used twice in this play (first at line 3, column 12); expected unique names."
      ]
    ),
    (
      "hosts: web\ntasks:\n  - {name: a, command: echo hi}\n",
      [
        "play.yml:3:24: error: 'command' of task 'a' must be a list of arguments (it runs without a shell), found a scalar; use 'shell' for a command line."
      ]
    ),
    (
      "hosts: web\ntasks:\n  - {name: a, shell: x, command: [y]}\n",
      [
        "play.yml:3:25: error: the task 'a' has more than one action ('shell' and 'command'); expected exactly one."
      ]
    ),
    (
      "hosts: web\ntasks:\n  - {name: a}\n",
      ["play.yml:3:5: error: the task 'a' has no action; expected one of: command, shell, script, upload."]
    ),
    (
      "hosts: web\ntasks:\n  - {name: a, shell: x, timeout: soon, retries: many, on_failure: ignore}\n",
      [
        "play.yml:3:34: error: expected a length of time for 'timeout' of task 'a' (like 30s, 10m, 1h30m or a number of seconds), found 'soon'.",
        "play.yml:3:49: error: expected a whole number for 'retries' of task 'a', found 'many'.",
        "play.yml:3:67: error: unknown on_failure 'ignore' for task 'a'; expected one of: abort-host, continue, abort-run.",
      ]
    ),
    (
      "hosts: web\ntasks:\n  - {name: a, shell: x, ok_codes: [0, 300], become: maybe}\n",
      [
        "play.yml:3:39: error: each entry of 'ok_codes' of task 'a' is 300; expected a number from 0 to 255.",
        "play.yml:3:53: error: expected true or false for 'become' of task 'a', found 'maybe'.",
      ]
    ),
    (
      "hosts: web\ntasks:\n  - {name: a, shell: x, env: {1BAD: x}}\n",
      [
        "play.yml:3:31: error: '1BAD' is not a valid environment variable name; expected ASCII letters, digits and '_', not starting with a digit."
      ]
    ),
    (
      "hosts: web\ntasks:\n  - {name: a, shell: x, when: \"a = 1\"}\n",
      [
        "play.yml:3:34: error: invalid condition for task 'a': unexpected '=' in the condition; expected '==' or '!='."
      ]
    ),
    (
      "hosts: web\ntasks:\n  - {name: a, script: missing.sh}\n",
      [
        "play.yml:3:23: error: the script 'missing.sh' of task 'a' does not exist or is not readable (looked for missing.sh)."
      ]
    ),
    (
      "hosts: web\ntasks:\n  - {name: a, upload: {src: f.txt, dest: /x, mode: rwx}}\n",
      [
        "play.yml:3:52: error: the mode 'rwx' of task 'a' is not an octal file mode; expected something like 0644."
      ]
    ),
    (
      "name: p\ntasks:\n  - {name: a, shell: x}\n",
      [
        "play.yml:1:1: error: the play ('p') has no 'hosts'; expected a selector like 'all', 'web' or 'role=web'."
      ]
    ),
    (
      "hosts: web\n",
      ["play.yml:1:1: error: the play ('play 1') has no 'tasks'; expected a list of tasks."]
    ),
    (
      "hosts: web\ntasks: []\n",
      ["play.yml:2:8: error: 'tasks' is empty; expected at least one task."]
    ),
    (
      "hosts: web\nvars: {host: x}\ntasks:\n  - {name: a, shell: x}\n",
      [
        "play.yml:2:8: error: 'host' is reserved for host facts (host.name, host.address, …); choose another variable name."
      ]
    ),
    (
      "hosts: \"web,,db\"\ntasks:\n  - {name: a, shell: x}\n",
      [
        "play.yml:1:13: error: the selector 'web,,db' has an empty term; expected terms like 'web', 'role=web' or 'web-*' joined by commas."
      ]
    ),
    (
      "hosts: web\ntask:\n  - {name: a, shell: x}\n",
      [
        "play.yml:1:1: error: the play ('play 1') has no 'tasks'; expected a list of tasks.",
        "play.yml:2:1: error: unknown key 'task' in the play (did you mean 'tasks'?); expected one of: name, hosts, vars, policy, tasks.",
      ]
    ),
  ])
  func invalidPlaybooks(yaml: String, expected: [String]) throws {
    let fixture = try Fixture(["play.yml": yaml, "inv.yml": fleet, "f.txt": "x"])
    defer { fixture.remove() }
    let outcome = fixture.load()
    let messages = fixture.messages(outcome)
    #expect(messages == expected)
    #expect(outcome.exitCode == 2)
  }

  /// A raw `{{ v }}` in `shell:` is read by the shell: validate says so and suggests `| quote`.
  /// Checked host facts (name, address, port, user) and quoted or literal values need nothing.
  @Test func unquotedValuesInShellCommandsAreWarnedAbout() throws {
    let fixture = try Fixture([
      "play.yml": """
      hosts: web
      vars: {dir: /srv, keep: "7"}
      tasks:
        - name: clean
          shell: "find {{ dir }} -mtime +{{ keep | quote }} -delete; echo {{ host.name }} {{ 'x y' }}"
        - name: tag
          shell: echo {{ host.tags.role }}
        - name: argv
          command: [find, "{{ dir }}"]
      """,
      "inv.yml": fleet,
    ])
    defer { fixture.remove() }
    let outcome = fixture.load()
    #expect(outcome.exitCode == 0 && outcome.diagnostics.isEmpty)
    let warnings = PlaybookLint.unquotedShellValues(try #require(outcome.playbook)).map {
      $0.description.replacingOccurrences(of: fixture.dir + "/", with: "")
    }
    #expect(
      warnings == [
        "play.yml:5:18: warning: '{{ dir }}' is inserted into the shell command of task 'clean' unquoted: a value with spaces, quotes, ';' or '$(…)' would be read as shell syntax; write '{{ dir | quote }}' (or use 'command:', whose arguments are never parsed by a shell).",
        "play.yml:7:17: warning: '{{ host.tags.role }}' is inserted into the shell command of task 'tag' unquoted: a value with spaces, quotes, ';' or '$(…)' would be read as shell syntax; write '{{ host.tags.role | quote }}' (or use 'command:', whose arguments are never parsed by a shell).",
      ])
  }

  /// No command line, environment variable or path can carry a NUL byte.
  @Test func aNULInARenderedValueIsAnError() throws {
    let (outcome, messages) = try plan(
      [
        "play.yml": "hosts: web-1\ntasks:\n  - {name: a, command: [echo, \"{{ v }}\"]}\n",
        "inv.yml": fleet,
      ], options: PlanOptions(extraVars: ["v": .string("a\u{0}b")], defaultUser: "ops"))
    #expect(outcome.exitCode == 2)
    #expect(
      messages == [
        "play.yml:3:31: error: the value of '{{ v }}' in task 'a' for host web-1 contains a NUL byte, which no command line, environment variable or path can carry; remove it from the variable."
      ])
  }

  @Test func everyProblemIsReportedAtOnce() throws {
    let (outcome, messages) = try plan([
      "play.yml": """
      - hosts: web
        tasks:
          - {name: a, shell: x, needs: [zz]}
      - hosts: web
        tasks:
          - {name: b, shell: x, retries: -1}
      """,
      "inv.yml": fleet,
    ])
    #expect(
      messages == [
        "play.yml:3:35: error: the task 'a' needs 'zz', which is not a task of this play.",
        "play.yml:6:36: error: 'retries' of task 'b' is -1; expected a number from 0 to 100.",
      ])
    #expect(outcome.exitCode == 2)
  }

  @Test func unknownVariableIsAnErrorAtValidateTime() throws {
    let (outcome, messages) = try plan([
      "play.yml": """
      hosts: all
      vars: {version: "1.2"}
      tasks:
        - name: deploy
          command: [deploy, "{{ verison }}", "{{ host.tags.role }}"]
        - name: zone
          shell: echo {{ host.tags.rack }}
      """,
      "inv.yml": fleet,
    ])
    #expect(
      messages == [
        "play.yml:5:24: error: unknown variable 'verison' in task 'deploy' for host web-1 and 6 other hosts (did you mean 'version'?); define it in the play's vars, the inventory, or with -e verison=VALUE.",
        "play.yml:7:17: error: unknown variable 'host.tags.rack' in task 'zone' for host web-1 and 6 other hosts; the tag 'rack' is not set on those hosts (use '| default(…)' for optional tags).",
      ])
    #expect(outcome.exitCode == 2)
  }

  @Test func extraVarsResolveUnknownVariables() throws {
    let (outcome, messages) = try plan(
      [
        "play.yml": "hosts: all\ntasks:\n  - {name: a, shell: \"echo {{ release }}\"}\n",
        "inv.yml": fleet,
      ], options: PlanOptions(extraVars: ["release": .string("7")], defaultUser: "ops"))
    #expect(messages == [])
    #expect(outcome.plan?.plays[0].hosts[0].steps[0].rendered?.display == "echo 7")
  }

  @Test func emptyTargetIsAnError() throws {
    let (_, messages) = try plan([
      "play.yml": "hosts: role=cache\ntasks:\n  - {name: a, shell: x}\n",
      "inv.yml": fleet,
    ])
    #expect(messages.count == 1)
    #expect(
      messages.first?.hasPrefix(
        "play.yml:1:8: error: the play 'play 1' targets no hosts: 'role=cache' matched nothing in ") == true)
    #expect(messages.first?.hasSuffix("inv.yml; expected at least one host.") == true)
  }

  @Test func unknownGroupSuggests() throws {
    let (_, messages) = try plan([
      "play.yml": "hosts: wbe\ntasks:\n  - {name: a, shell: x}\n",
      "inv.yml": fleet,
    ])
    #expect(messages.count == 1)
    #expect(
      messages[0].hasPrefix(
        "play.yml:1:8: error: the play 'play 1' targets 'wbe', which is neither a group nor a host of "))
    #expect(messages[0].hasSuffix("; did you mean 'web'?"))
  }

  @Test func yamlBombPlaybookIsRejected() throws {
    var text = "x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n"
    for i in 1...8 {
      text += "x\(i): &x\(i) [" + Array(repeating: "*x\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
    }
    let (outcome, messages) = try plan(["play.yml": text, "inv.yml": fleet])
    #expect(outcome.exitCode == 2)
    #expect(messages.first?.contains("expands to more than 5000000 nodes") == true)
  }
}
