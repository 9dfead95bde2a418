import Foundation
import Testing

/// OpenSSH habits against the local fleet: an ssh_config `Host` block for an inventory name, a
/// jump host, ssh's own user, `-v`/`-vv`, and shell command lines in `sixty exec`.
@Suite(.serialized) struct OpenSSHHabitsEndToEndTests {
  func write(_ text: String, _ path: String) throws -> String {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  /// The inventory names the hosts only; the `-F` file's Host blocks give their address, port
  /// and user, and the key is pushed for the user `ssh -G` reports, not $USER.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func anSSHConfigHostBlockForTheInventoryNameIsHonoured() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      var inventory = "hosts:\n"
      var config = ""
      for host in fleet.hosts {
        inventory += "  \(host.name): {instance_id: \(host.instanceID), tags: {role: web}}\n"
        config += "Host \(host.name)\n  HostName \(host.address)\n  Port \(host.port)\n  User \(fleet.user)\n"
      }
      let inventoryPath = try write(inventory, fleet.directory + "/names.yml")
      let configPath = try write(config, fleet.directory + "/ssh_config")
      var environment = fleet.environment
      environment["USER"] = "someone-else"
      let result = try SixtyBinary.run(
        [
          "exec", "all", "-i", inventoryPath, "-F", configPath, "--endpoint", fleet.endpoint, "--no-progress",
          "--report", fleet.directory + "/report.json", "--", "echo \"$(whoami) on $SSH_CONNECTION\"",
        ], environment: environment)
      #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
      for host in fleet.hosts {
        #expect(
          result.stdout.contains("\(host.name) | \(fleet.user) on ")
            && result.stdout.contains(" \(host.port)\n"),
          "\(result.stdout)")
      }
      let data = try Data(contentsOf: URL(fileURLWithPath: fleet.directory + "/report.json"))
      let report = try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
      let plays = report["plays"] as? [[String: Any]] ?? []
      let hosts = plays.first?["hosts"] as? [String: [String: Any]] ?? [:]
      #expect(hosts.count == 2 && hosts.values.allSatisfy { $0["user"] as? String == fleet.user }, "\(hosts)")
      // Without the file ssh knows neither address nor port: nothing authenticates.
      let without = try SixtyBinary.run(
        [
          "exec", "all", "-i", inventoryPath, "--endpoint", fleet.endpoint, "--no-progress", "--timeout",
          "20s",
          "--", "true",
        ], environment: environment)
      #expect(without.status != 0, "\(without.stdout)")
    }
  }

  /// `-J` through one local sshd to another (loopback only): the jump host's log shows the
  /// jump login, and the target runs the command.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aJumpHostCarriesTheConnection() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      let jump = fleet.hosts[0]
      let target = fleet.hosts[1]
      let key = fleet.directory + "/jump_key"
      let keygen = try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])
      try #require(keygen.status == 0, "\(keygen.stderr)")
      let config = try write(
        """
        Host jump-box
          HostName \(jump.address)
          Port \(jump.port)
          User \(fleet.user)
          IdentityFile \(key)
          IdentitiesOnly yes
          BatchMode yes
          StrictHostKeyChecking no
          UserKnownHostsFile /dev/null
        """, fleet.directory + "/ssh_config")
      let inventory = try write(
        "hosts:\n  \(target.name): {address: \(target.address), port: \(target.port), user: \(fleet.user), instance_id: \(target.instanceID), tags: {role: web}}\n",
        fleet.directory + "/target.yml")
      // The jump host lets in the test's own key (pushed through the broker like any other).
      let push = try SixtyBinary.run(
        [
          "push", "--instance-id", jump.instanceID, "--os-user", fleet.user, "--public-key", key + ".pub",
          "--endpoint", fleet.endpoint,
        ], environment: fleet.environment)
      try #require(push.status == 0, "\(push.stderr)")
      let fingerprint = try runProgram("/usr/bin/ssh-keygen", ["-l", "-f", key + ".pub"]).stdout.split(
        separator: " ")[1]
      let result = try SixtyBinary.run(
        [
          "exec", "all", "-i", inventory, "-F", config, "-J", "jump-box", "--endpoint", fleet.endpoint,
          "--no-progress", "-vv", "--", "echo $SSH_CONNECTION",
        ], environment: fleet.environment)
      #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
      #expect(result.stdout.contains("\(target.name) | "), "\(result.stdout)")
      #expect(result.stderr.contains("-o ProxyJump=jump-box"), "\(result.stderr)")
      #expect(
        jump.sshLog.contains("Accepted publickey for \(fleet.user)")
          && jump.sshLog.contains(String(fingerprint)),
        "\(jump.sshLog)")
      // The same jump from the inventory's proxy_jump, with no -J: another login through the jump host.
      let jumpsBefore = jump.sshLog.components(separatedBy: "Accepted publickey for \(fleet.user)").count
      let jumping = try write(
        "hosts:\n  \(target.name): {address: \(target.address), port: \(target.port), user: \(fleet.user), instance_id: \(target.instanceID), proxy_jump: jump-box}\n",
        fleet.directory + "/jumping.yml")
      let fromInventory = try SixtyBinary.run(
        [
          "exec", "all", "-i", jumping, "-F", config, "--endpoint", fleet.endpoint, "--no-progress", "-vv",
          "--",
          "echo $SSH_CONNECTION",
        ], environment: fleet.environment)
      #expect(fromInventory.status == 0, "\(fromInventory.stdout)\n\(fromInventory.stderr)")
      #expect(fromInventory.stdout.contains("\(target.name) | "), "\(fromInventory.stdout)")
      #expect(fromInventory.stderr.contains("-o ProxyJump=jump-box"), "\(fromInventory.stderr)")
      #expect(
        jump.sshLog.components(separatedBy: "Accepted publickey for \(fleet.user)").count > jumpsBefore,
        "\(jump.sshLog)")
    }
  }

  /// `-v` and `-vv` add detail on standard error; without them there is none. A one-argument
  /// command is a shell line, and no internal name leaks into what it prints.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func verboseLinesAppearOnlyWhenAskedFor() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      let inventory = try fleet.writeInventory()
      func exec(_ flags: [String], _ command: String...) throws -> SixtyBinary.Result {
        try SixtyBinary.run(
          ["exec", "all", "-i", inventory, "--endpoint", fleet.endpoint, "--no-progress"] + flags + ["--"]
            + command,
          environment: fleet.environment)
      }
      let quiet = try exec([], "uptime >/dev/null; df -h / | tail -1 | wc -l")
      #expect(quiet.status == 0, "\(quiet.stdout)\n\(quiet.stderr)")
      #expect(quiet.stdout.contains("web-1 | 1\n") && quiet.stdout.contains("web-2 | 1\n"), "\(quiet.stdout)")
      #expect(
        !quiet.stderr.contains("sixty: run: ") && !quiet.stderr.contains("key pushed for")
          && !quiet.stderr.contains("sixty: ssh client:") && !quiet.stderr.contains("sixty: key type:"),
        "\(quiet.stderr)")
      let one = try exec(["-v"], "true")
      #expect(one.status == 0, "\(one.stderr)")
      #expect(one.stderr.contains("sixty: web-1: key pushed for \(fleet.user) in "), "\(one.stderr)")
      #expect(one.stderr.contains("sixty: web-2: authenticated "), "\(one.stderr)")
      #expect(one.stderr.contains(" ms after the key push"), "\(one.stderr)")
      #expect(!one.stderr.contains("sixty: run: "), "\(one.stderr)")
      // The built-in client's logins and commands.
      let builtin = try exec(["-vv"], "true")
      #expect(builtin.status == 0, "\(builtin.stderr)")
      let logins = builtin.stderr.split(separator: "\n").filter {
        $0.hasPrefix("sixty: run: (built-in ssh client) ")
      }
      #expect(logins.count >= 4, "\(builtin.stderr)")
      #expect(!builtin.stderr.contains("PRIVATE KEY") && !builtin.stderr.contains("ecdsa-sha2-nistp256 AAAA"))
      // OpenSSH's command lines.
      let policy = fleet.directory + "/openssh.yml"
      try "ssh_client: openssh\n".write(toFile: policy, atomically: true, encoding: .utf8)
      let two = try exec(["-vv", "--policy", policy], "true")
      #expect(two.status == 0, "\(two.stderr)")
      let lines = two.stderr.split(separator: "\n").filter { $0.hasPrefix("sixty: run: ssh ") }
      #expect(lines.count >= 2, "\(two.stderr)")
      #expect(lines.allSatisfy { $0.contains(" -i /") && $0.contains(" -o IdentitiesOnly=yes") }, "\(lines)")
      #expect(!two.stderr.contains("PRIVATE KEY") && !two.stderr.contains("ssh-rsa AAAA"), "\(two.stderr)")
      // An argument list whose command is missing: the shell's message, with no internal name.
      let missing = try exec([], "no-such-command-here", "x")
      #expect(missing.status == 1)
      #expect(missing.stdout.contains("web-1 ! sh: 1: no-such-command-here: not found"), "\(missing.stdout)")
      #expect(!(missing.stdout + missing.stderr).contains("sixty-task"), "\(missing.stdout)")
    }
  }
}
