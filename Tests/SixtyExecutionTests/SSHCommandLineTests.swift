import Testing

@testable import SixtyExecution

/// Every ssh invocation, as exact argv arrays.
@Suite struct SSHCommandLineTests {
  let target = ExecutionTarget(
    address: "10.0.0.5", port: 2222, user: "ops", tasks: [], sshOptions: ["ProxyJump=ops@bastion"])
  let line = SSHCommandLine(
    ssh: "/usr/bin/ssh", keyPath: "/run/x/key", hostKeyPolicy: .strict, knownHostsFile: "/k/known_hosts",
    connectTimeout: 7, extraOptions: ["-4"])

  var base: [String] {
    [
      "/usr/bin/ssh", "-i", "/run/x/key", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o",
      "BatchMode=yes", "-o", "ConnectTimeout=7", "-o", "ServerAliveInterval=15", "-o",
      "ServerAliveCountMax=3",
      "-o", "ControlPath=/run/x/c3", "-p", "2222", "-l", "ops", "-o", "StrictHostKeyChecking=yes", "-4", "-o",
      "ProxyJump=ops@bastion",
    ]
  }

  @Test func theMasterHasNoCommand() {
    #expect(
      line.master(target, controlPath: "/run/x/c3", log: "/run/x/ssh3.log")
        == base + [
          "-M", "-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-E", "/run/x/ssh3.log", "--",
          "10.0.0.5",
        ])
  }

  @Test func aFusedMasterRunsTheTaskAndLogsVerbosely() {
    var expected = base
    expected.insert(contentsOf: ["-o", "LogLevel=VERBOSE"], at: 1)
    expected += [
      "-M", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-E", "/run/x/ssh3.log", "-T", "--",
      "10.0.0.5", "exec sh -c true m",
    ]
    #expect(
      line.fusedMaster(target, controlPath: "/run/x/c3", log: "/run/x/ssh3.log", command: "exec sh -c true m")
        == expected)
  }

  @Test func aTaskAndARemoteStopGoOverTheMaster() {
    #expect(
      line.task(target, controlPath: "/run/x/c3", command: "exec sh -c 'echo hi' m")
        == base + ["-o", "ControlMaster=no", "-T", "--", "10.0.0.5", "exec sh -c 'echo hi' m"])
    #expect(
      line.remoteStop(target, controlPath: "/run/x/c3", pattern: "sixty-tas[k]-ab-3-$")
        == base + [
          "-o", "ControlMaster=no", "-T", "--", "10.0.0.5", "pkill -TERM -f -- 'sixty-tas[k]-ab-3-$'",
        ])
    #expect(line.check(target, controlPath: "/run/x/c3") == base + ["-O", "check", "--", "10.0.0.5"])
  }

  @Test func hostKeyPolicies() {
    var line = self.line
    line.hostKeyPolicy = .off
    #expect(
      Array(line.base(target, controlPath: "/c").suffix(9))
        == [
          "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
          "-4",
          "-o", "ProxyJump=ops@bastion",
        ])
    line.hostKeyPolicy = .acceptNew
    line.knownHostsFile = "/home/a b/known_hosts"
    #expect(
      Array(line.base(target, controlPath: "/c").suffix(7))
        == [
          "-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=\"/home/a b/known_hosts\"",
          "-4",
          "-o", "ProxyJump=ops@bastion",
        ])
    #expect(
      SSHExecutor.trustOnFirstUse("/k/h")
        == ["-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=/k/h"])
  }

  @Test func remoteStopPatternsDoNotMatchTheirOwnShell() {
    #expect(RemoteStopper.pattern(prefix: "sixty-task-ab-3-1", exact: true) == "sixty-tas[k]-ab-3-1$")
    #expect(RemoteStopper.pattern(prefix: "sixty-task-ab-3-", exact: false) == "sixty-tas[k]-ab-3-")
    let stopper = RemoteStopper(marker: "sixty-task-ab")
    #expect(stopper.taskMarker(host: 3, task: 1) == "sixty-task-ab-3-1")
    #expect(stopper.hostPrefix(host: 3) == "sixty-task-ab-3-")
    #expect(RemoteStopper.randomMarker().utf8.count == "sixty-task-".utf8.count + 12)
  }
}
