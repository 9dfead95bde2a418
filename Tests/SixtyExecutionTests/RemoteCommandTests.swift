import SixtyProcess
import Testing

@testable import SixtyExecution
@testable import SixtyPlanning

@Suite struct RemoteCommandTests {
  func command(_ action: RenderedTask.Action, env: [String] = [], cwd: String? = nil, become: String? = nil)
    -> String
  {
    RemoteCommand.command(RenderedTask(action: action, env: env, cwd: cwd), become: become).command
  }

  @Test func perHostSSHOptionsComeAfterTheFixedOnes() {
    let executor = SSHExecutor(
      targets: [
        "a": ExecutionTarget(
          address: "10.0.0.5", port: 22, user: "ec2-user", tasks: [],
          sshOptions: ["ProxyJump=ops@bastion.example.com"]),
        "b": ExecutionTarget(
          address: "10.0.0.6", port: 2222, user: "ubuntu", tasks: []),
      ], runDirectory: "/run/x", keyPath: "/run/x/key", hostKeyPolicy: .strict)
    let a = executor.commandLine.base(executor.targets["a"]!, controlPath: executor.controlPath("a"))
    #expect(Array(a.suffix(2)) == ["-o", "ProxyJump=ops@bastion.example.com"])
    #expect(a.contains("BatchMode=yes") && a.contains("IdentitiesOnly=yes"))
    let b = executor.commandLine.base(executor.targets["b"]!, controlPath: executor.controlPath("b"))
    #expect(!b.contains { $0.hasPrefix("ProxyJump") })
    #expect(b.contains("2222") && b.contains("ubuntu"))
  }

  /// ssh keeps an option's first value: a fused master's VERBOSE log level (which puts
  /// "Authenticated to" in its log) must come before the `off` policy's `LogLevel=ERROR`.
  @Test func aFusedMastersLogLevelComesFirst() {
    let executor = SSHExecutor(
      targets: [
        "a": ExecutionTarget(address: "10.0.0.5", port: 22, user: "ops", tasks: [])
      ], runDirectory: "/run/x", keyPath: "/run/x/key", hostKeyPolicy: .off)
    let target = executor.targets["a"]!
    let fused = executor.commandLine.fusedMaster(
      target, controlPath: "/run/x/c0", log: "/run/x/ssh0.log", command: "exec sh -c true m")
    let levels = fused.filter { $0.hasPrefix("LogLevel=") }
    #expect(levels == ["LogLevel=VERBOSE", "LogLevel=ERROR"], "\(fused)")
    #expect(Array(fused.suffix(3)) == ["--", "10.0.0.5", "exec sh -c true m"])
    #expect(!fused.contains("-N") && fused.contains("-T") && fused.contains("-M"))
    let plain = executor.commandLine.master(target, controlPath: "/run/x/c0", log: "/run/x/ssh0.log")
    #expect(plain.filter { $0.hasPrefix("LogLevel=") } == ["LogLevel=ERROR"])
    #expect(Array(plain.suffix(2)) == ["--", "10.0.0.5"] && plain.contains("-N"))
  }

  @Test func tasksRunNamedAndUnderTheRemoteTimeout() {
    #expect(
      RemoteCommand.wrapped("sleep 30", seconds: nil, marker: "sixty-task-ab-0-1")
        == "exec sh -c 'sleep 30' sh sixty-task-ab-0-1")
    let expected =
      #"if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 4 sh -c 'echo '\''a b'\''' sh m; else exec sh -c 'echo '\''a b'\''' sh m; fi"#
    #expect(RemoteCommand.wrapped("echo 'a b'", seconds: 2.5, marker: "m") == expected)
  }

  @Test func argumentsAreQuotedOneByOne() {
    #expect(
      command(.command(["echo", "a b", "$(id)", "it's", ";rm -rf /"]))
        == "echo 'a b' '$(id)' 'it'\\''s' ';rm -rf /'")
  }

  @Test func shellEnvCwdAndBecome() {
    #expect(command(.shell("echo $HOME | wc -c")) == "sh -c 'echo $HOME | wc -c'")
    #expect(command(.command(["make"]), cwd: "/srv/app") == "sh -c 'cd /srv/app && make'")
    #expect(
      command(.command(["apt-get", "-y", "upgrade"]), become: "root")
        == "sudo -n -u root -- sh -c 'apt-get -y upgrade'")
  }

  /// Environment values never reach a command line (`ps` shows those, on the runner and on the
  /// host): `sh -s` reads them from stdin, then the task.
  @Test func environmentTravelsOverStdin() {
    func remote(_ action: RenderedTask.Action, cwd: String? = nil, become: String? = nil) -> (
      String, ChildProcess.Input
    ) {
      let r = RemoteCommand.command(
        RenderedTask(action: action, env: ["TOKEN=s3cret value", "B=it's"], cwd: cwd), become: become)
      return (r.command, r.stdin)
    }
    let exports = "export TOKEN='s3cret value'\nexport B='it'\\''s'\n"
    let (command, stdin) = remote(.command(["make", "all"]), cwd: "/srv/app")
    #expect(command == "sh -s")
    #expect(stdin == .bytes(Array(("cd /srv/app || exit 1\n" + exports + "exec make all\n").utf8), then: nil))
    let (shell, shellInput) = remote(.shell("echo $TOKEN | wc -c"), become: "deploy")
    #expect(shell == "sudo -n -u deploy -- sh -s")
    #expect(shellInput == .bytes(Array((exports + "exec sh -c 'echo $TOKEN | wc -c'\n").utf8), then: nil))
    let (script, scriptInput) = remote(.script(path: "s.sh", resolvedPath: "/work/s.sh"))
    #expect(script == "sh -s")
    #expect(scriptInput == .bytes(Array(exports.utf8), then: "/work/s.sh"))
    for text in [command, shell, script] { #expect(!text.contains("s3cret")) }
  }

  @Test func scriptsAndUploadsTravelOverStdin() {
    let script = RemoteCommand.command(
      RenderedTask(action: .script(path: "s.sh", resolvedPath: "/work/s.sh"), env: [], cwd: nil), become: nil)
    #expect(script.command == "sh -s")
    #expect(script.stdin == .file("/work/s.sh"))
    let upload = RemoteCommand.command(
      RenderedTask(
        action: .upload(source: "motd", resolvedSource: "/work/motd", destination: "/etc/motd", mode: "0644"),
        env: [],
        cwd: nil), become: nil)
    #expect(upload.command == "sh -c 'cat > /etc/motd && chmod 0644 /etc/motd'")
    #expect(upload.stdin == .file("/work/motd"))
  }
}

@Suite struct ConnectionClosedTests {
  @Test(arguments: [
    ("Connection to 127.0.0.1 closed by remote host.\r\n", true),
    ("Connection to 127.0.0.1 closed by remote host.\n", true),
    ("some output\nConnection to web-1 closed.\n", true),
    ("client_loop: send disconnect: Broken pipe\n", true),
    ("Read from remote host 10.0.0.1: Connection reset by peer\n", true),
    ("Timeout, server 10.0.0.1 not responding.\n", true),
    ("err web-1\n", false),
    ("", false),
    ("Connection to 127.0.0.1 closed by remote host.\nbut the command went on\n", false),
  ])
  func sshsOwnLastWordsTellALostConnection(stderr: String, lost: Bool) {
    #expect(SSHLog.connectionClosed(stderr: stderr) == lost)
  }
}
