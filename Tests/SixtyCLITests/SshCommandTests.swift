import Foundation
import Testing

/// `sixty ssh` against moto (signature checking on) with a stand-in `ssh` that records how it
/// was called and inspects the key it was given. (Logging in through a real sshd needs a
/// server that installs pushed keys: the broker end-to-end tests cover that.)
@Suite(.serialized) struct SshCommandTests {
  let dir: String

  init() throws {
    dir = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-ssh-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir + "/keys", withIntermediateDirectories: true)
    let fakeSSH = """
      #!/bin/sh
      # Records the arguments and the key's state, then exits 7.
      out="$(dirname "$0")/ssh.out"
      : > "$out"
      for a in "$@"; do printf '%s\\n' "$a" >> "$out"; done
      key="$2"
      echo "mode $(stat -c %a "$key") $(stat -c %a "$(dirname "$key")")" >> "$out"
      ssh-keygen -y -f "$key" >> "$out" 2>&1
      exit 7
      """
    try fakeSSH.write(toFile: dir + "/ssh", atomically: true, encoding: .utf8)
    chmod(dir + "/ssh", 0o755)
    let inventory = """
      hosts:
        web-1:
          address: 127.0.0.5
          port: 2222
          user: deploy
          instance_id: i-0123456789abcdef0
          zone: us-east-1a
        no-id:
          address: 127.0.0.6
      """
    try inventory.write(toFile: dir + "/inventory.yml", atomically: true, encoding: .utf8)
    let evil = """
      hosts:
        evil:
          address: "-oProxyCommand=touch /tmp/sixty-pwned"
          instance_id: i-0000000000000bad
      """
    try evil.write(toFile: dir + "/evil.yml", atomically: true, encoding: .utf8)
  }

  func cleanup() { try? FileManager.default.removeItem(atPath: dir) }

  var recorded: [String] {
    ((try? String(contentsOfFile: dir + "/ssh.out", encoding: .utf8)) ?? "").split(separator: "\n").map(
      String.init)
  }

  func leftoverKeys() -> [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: dir + "/keys")) ?? []
  }

  @Test(.enabled(if: MotoServer.available, "moto_server is not installed (make test installs it)"))
  func pushesThenRunsSSHWithTheKeyAndWipesIt() throws {
    defer { cleanup() }
    let moto = try MotoServer(directory: dir)
    defer { moto.stop() }
    var env = moto.environment
    env["SIXTY_KEY_DIR"] = dir + "/keys"
    env["SIXTY_KNOWN_HOSTS"] = dir + "/state/known_hosts"
    let result = try SixtyBinary.run(
      [
        "ssh", "web-1", "-i", dir + "/inventory.yml", "--endpoint", moto.endpoint, "--ssh", dir + "/ssh",
        "-o", "ServerAliveInterval=5", "-J", "bastion", "--ssh-arg", "-v", "--", "uptime", "-p",
      ], environment: env)
    #expect(result.status == 7, "\(result.stderr)")
    #expect(result.stderr.contains("pushed a key for deploy to i-0123456789abcdef0"))
    let args = recorded
    try #require(args.count >= 25, "\(args)")
    #expect(args[0] == "-i" && args[1].hasPrefix(dir + "/keys/sixty-run-"))
    // The same options as `sixty run`'s ssh, host key checking in the known_hosts file `sixty run`
    // uses (after the operator's -J and -o, so an explicit -o of theirs wins: ssh keeps the first
    // value), then the inventory name as the destination with its address as HostName, so
    // ssh_config's Host blocks match.
    #expect(
      Array(args[2...22]) == [
        "-o", "IdentitiesOnly=yes", "-p", "2222", "-l", "deploy", "-o", "ProxyJump=bastion", "-o",
        "ServerAliveInterval=5", "-o", "StrictHostKeyChecking=accept-new", "-o",
        "UserKnownHostsFile=\(dir)/state/known_hosts", "-o", "HostName=127.0.0.5", "-v", "--", "web-1",
        "uptime",
        "-p",
      ])
    #expect(args[23] == "mode 600 700")
    #expect(args[24].hasPrefix("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"))
    var info = stat()
    #expect(stat(dir + "/state", &info) == 0 && info.st_mode & 0o777 == 0o700)
    #expect(leftoverKeys().isEmpty, "the key directory was not wiped")
    // The organisation policy's host_key_checking applies, as it does to `sixty run`.
    try "host_key_checking: off\n".write(toFile: dir + "/off.yml", atomically: true, encoding: .utf8)
    let off = try SixtyBinary.run(
      [
        "ssh", "web-1", "-i", dir + "/inventory.yml", "--endpoint", moto.endpoint, "--ssh", dir + "/ssh",
        "--policy", dir + "/off.yml",
      ], environment: env)
    #expect(off.status == 7, "\(off.stderr)")
    #expect(
      Array(recorded[8...13]) == [
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
      ], "\(recorded)")
  }

  /// With no USER@, --os-user or inventory user, the key is pushed for the user `ssh -G` reports
  /// (ssh_config's User), as `sixty run` does; `-G` gets the same -F, -o and destination.
  @Test(.enabled(if: MotoServer.available, "moto_server is not installed (make test installs it)"))
  func theDefaultUserIsTheOneSSHWouldUse() throws {
    defer { cleanup() }
    let moto = try MotoServer(directory: dir)
    defer { moto.stop() }
    try """
    #!/bin/sh
    if [ "$1" = "-G" ]; then printf '%s\\n' "$@" > "$(dirname "$0")/ssh-G.out"; echo "user from-config"; exit 0; fi
    exit 0
    """.write(toFile: dir + "/ssh-g", atomically: true, encoding: .utf8)
    chmod(dir + "/ssh-g", 0o755)
    try "hosts:\n  db-1: {address: 127.0.0.7, instance_id: i-0123456789abcdef1}\n".write(
      toFile: dir + "/nouser.yml", atomically: true, encoding: .utf8)
    var env = moto.environment
    env["SIXTY_KEY_DIR"] = dir + "/keys"
    env["SIXTY_KNOWN_HOSTS"] = dir + "/state/known_hosts"
    let result = try SixtyBinary.run(
      [
        "ssh", "db-1", "-i", dir + "/nouser.yml", "--endpoint", moto.endpoint, "--ssh", dir + "/ssh-g", "-F",
        "/etc/sixty/none", "-o", "ServerAliveInterval=5",
      ], environment: env)
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stderr.contains("pushed a key for from-config to i-0123456789abcdef1"), "\(result.stderr)")
    let asked = (try? String(contentsOfFile: dir + "/ssh-G.out", encoding: .utf8)) ?? ""
    #expect(
      asked
        == "-G\n-F\n/etc/sixty/none\n-o\nServerAliveInterval=5\n-o\nHostName=127.0.0.7\n--\ndb-1\n",
      "\(asked)")
  }

  @Test(.enabled(if: MotoServer.available, "moto_server is not installed (make test installs it)"))
  func aRefusedPushNeverRunsSSH() throws {
    defer { cleanup() }
    let moto = try MotoServer(directory: dir)
    defer { moto.stop() }
    var env = moto.environment
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    env["SIXTY_KEY_DIR"] = dir + "/keys"
    let result = try SixtyBinary.run(
      [
        "ssh", "ops@i-0abc123def4567890", "--address", "127.0.0.9", "--endpoint", moto.endpoint, "--ssh",
        dir + "/ssh",
      ],
      environment: env)
    #expect(result.status == 3)
    #expect(result.stderr.contains("SignatureDoesNotMatch"))
    #expect(recorded.isEmpty)
    #expect(leftoverKeys().isEmpty)
  }

  /// Ctrl-C or SIGTERM while ssh runs: the key directory is wiped and sixty exits 130 or 143.
  @Test(
    .enabled(if: MotoServer.available, "moto_server is not installed (make test installs it)"),
    arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143))])
  func aSignalWipesTheKeyAndExits(signal: Int32, code: Int32) throws {
    defer { cleanup() }
    let moto = try MotoServer(directory: dir)
    defer { moto.stop() }
    try "#!/bin/sh\necho $$ > \"\(dir)/ssh.started\"\nexec sleep 30\n".write(
      toFile: dir + "/slow-ssh", atomically: true, encoding: .utf8)
    chmod(dir + "/slow-ssh", 0o755)
    var env = moto.environment
    env["SIXTY_KEY_DIR"] = dir + "/keys"
    env["SIXTY_KNOWN_HOSTS"] = dir + "/state/known_hosts"
    let sixty = try LocalProcess(
      SixtyBinary.path,
      [
        "ssh", "web-1", "-i", dir + "/inventory.yml", "--endpoint", moto.endpoint, "--ssh", dir + "/slow-ssh",
      ],
      environment: env, logPath: dir + "/sixty.log")
    defer { sixty.stop() }
    var started = false
    for _ in 0..<200 where !started {
      started = FileManager.default.fileExists(atPath: dir + "/ssh.started")
      if !started { usleep(50_000) }
    }
    try #require(started, "ssh never started: \(sixty.log)")
    // The fake ssh (a sleep) is ours to stop, whatever sixty did.
    let sshPID = try String(contentsOfFile: dir + "/ssh.started", encoding: .utf8)
    defer {
      if let pid = pid_t(sshPID.trimmingCharacters(in: .whitespacesAndNewlines)) { kill(pid, SIGKILL) }
    }
    #expect(!leftoverKeys().isEmpty, "the key directory should exist while ssh runs")
    kill(sixty.pid, signal)
    var status: Int32?
    for _ in 0..<100 where status == nil {
      status = sixty.exitStatus
      if status == nil { usleep(50_000) }
    }
    #expect(status == code, "\(sixty.log)")
    #expect(leftoverKeys().isEmpty, "the key directory was not wiped")
  }

  @Test func badTargetsAreRefusedBeforeAnything() throws {
    defer { cleanup() }
    let inventory = dir + "/inventory.yml"
    let cases: [([String], String)] = [
      (
        ["ssh", "web-2", "-i", inventory],
        "the inventory \(inventory) has no host or instance id 'web-2' (did you mean 'web-1'?)."
      ),
      (["ssh", "no-id", "-i", inventory], "the host 'no-id' has no instance_id"),
      (["ssh", "server-9"], "'server-9' is not an instance id"),
      (
        ["ssh", "i-0123456789abcdef0"],
        "the instance i-0123456789abcdef0 has no known address; pass --address"
      ),
      (["ssh", "bad user@web-1", "-i", inventory], "the OS user 'bad user' is not valid"),
      (["ssh", "i-0123456789abcdef0", "--address", "host;rm -rf /"], "is not a host name or IP address"),
      (["ssh", "web-1", "-i", inventory, "--port", "0"], "The port 0 is out of range"),
      (
        ["ssh", "web-1", "-i", inventory, "-o", "IdentityFile=/tmp/other"],
        "The ssh option -o 'IdentityFile=/tmp/other' cannot be used: Sixty sets it itself"
      ),
      (["ssh", "web-1", "-i", inventory, "-J", "a b"], "The jump host -J 'a b' is not valid"),
    ]
    for (arguments, expected) in cases {
      let result = try SixtyBinary.run(
        arguments + ["--ssh", dir + "/ssh", "--endpoint", "http://127.0.0.1:9"],
        environment: ["SIXTY_KEY_DIR": dir + "/keys"])
      #expect(result.status == 2, "\(arguments): \(result.stderr)")
      #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
    }
    // A hostile inventory address is refused where the inventory is read, naming the line.
    let evil = try SixtyBinary.run(
      ["ssh", "evil", "-i", dir + "/evil.yml", "--ssh", dir + "/ssh", "--endpoint", "http://127.0.0.1:9"],
      environment: ["SIXTY_KEY_DIR": dir + "/keys"])
    #expect(evil.status == 2, "\(evil.stderr)")
    #expect(
      evil.stderr.contains(
        "evil.yml:3:14: error: the address '-oProxyCommand=touch /tmp/sixty-pwned' of host 'evil'"))
    #expect(recorded.isEmpty)
    #expect(!FileManager.default.fileExists(atPath: "/tmp/sixty-pwned"))
    #expect(leftoverKeys().isEmpty)
  }
}
