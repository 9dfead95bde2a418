import Testing

@testable import SixtyExecution

/// How a host is named to ssh: the inventory name as the destination (so ssh_config's `Host`
/// blocks match), the address as `HostName`, and `-l`/`-p` only where the inventory sets them.
@Suite struct SSHDestinationTests {
  let line = SSHCommandLine(
    ssh: "ssh", keyPath: "/run/x/key", hostKeyPolicy: .strict, knownHostsFile: "/k", connectTimeout: 5,
    extraOptions: SSHClientSettings(
      options: ["ServerAliveInterval=5"], jump: "ops@bastion:2200", configFile: "/etc/sixty/ssh_config"
    ).arguments)

  func target(name: String?, address: String, userIsSet: Bool = false, portIsSet: Bool = false)
    -> ExecutionTarget
  {
    ExecutionTarget(
      address: address, port: 2222, user: "ops", tasks: [], sshOptions: ["ConnectionAttempts=2"], name: name,
      userIsSet: userIsSet, portIsSet: portIsSet)
  }

  let common = [
    "ssh", "-i", "/run/x/key", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
    "-o",
    "ConnectTimeout=5", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3", "-o", "ControlPath=/c",
  ]
  let client = [
    "-o", "StrictHostKeyChecking=yes", "-F", "/etc/sixty/ssh_config", "-o", "ProxyJump=ops@bastion:2200",
    "-o",
    "ServerAliveInterval=5", "-o", "ConnectionAttempts=2",
  ]

  @Test func theNameIsTheDestinationAndTheAddressItsHostName() {
    let web = target(name: "web-1", address: "10.0.0.5")
    #expect(web.destination == "web-1")
    #expect(
      line.task(web, controlPath: "/c", command: "true")
        == common + client + [
          "-o", "HostName=10.0.0.5", "-o", "ControlMaster=no", "-T", "--", "web-1", "true",
        ])
  }

  @Test func userAndPortOnlyWhenSet() {
    let web = target(name: "web-1", address: "10.0.0.5", userIsSet: true, portIsSet: true)
    #expect(
      line.check(web, controlPath: "/c")
        == common + ["-p", "2222", "-l", "ops"] + client + [
          "-o", "HostName=10.0.0.5", "-O", "check", "--", "web-1",
        ])
  }

  @Test func aNameWithoutAnAddressLeavesHostNameToSSHConfig() {
    let web = target(name: "web-1", address: "web-1")
    #expect(
      line.resolvedConfig(web)
        == [
          "ssh", "-G", "-F", "/etc/sixty/ssh_config", "-o", "ProxyJump=ops@bastion:2200", "-o",
          "ServerAliveInterval=5", "-o", "ConnectionAttempts=2", "--", "web-1",
        ])
  }

  @Test(arguments: [
    "-oProxyCommand=x", "web@evil", "db:1", "a/b", "wéb-1", "_x", ".hidden",
    String(repeating: "a", count: 254),
  ])
  func namesThatCannotBeDestinationsUseTheAddress(_ name: String) {
    let host = target(name: name, address: "10.0.0.7")
    #expect(host.destination == "10.0.0.7")
    #expect(host.hostNameOption == nil)
    #expect(Array(line.check(host, controlPath: "/c").suffix(2)) == ["--", "10.0.0.7"])
  }

  @Test func ipv6AndZoneAddressesAreBareAndEscapedForHostName() {
    let host = target(name: "db-1", address: "[fe80::1%eth0]")
    #expect(host.hostNameOption == "HostName=fe80::1%%eth0")
    #expect(target(name: nil, address: "[fe80::1]").destination == "fe80::1")
  }

  @Test func sshGReportsTheUser() {
    #expect(SSHConfigResolver.user(inConfig: "hostname 10.0.0.5\nuser alice\nport 22\n") == "alice")
    #expect(SSHConfigResolver.user(inConfig: "user -oProxyCommand=x\n") == nil)
    #expect(SSHConfigResolver.user(inConfig: "hostname x\n") == nil)
  }

  @Test func sixtySSHBuildsTheSameOptions() {
    let web = target(name: "web-1", address: "10.0.0.5", userIsSet: true)
    #expect(
      InteractiveSSH.arguments(
        target: web, keyPath: "/k/id", client: SSHClientSettings(jump: "bastion"), hostKeyPolicy: .acceptNew,
        knownHostsFile: "/s/known_hosts", extra: ["-v"], command: ["uptime"])
        == [
          "-i", "/k/id", "-o", "IdentitiesOnly=yes", "-l", "ops", "-o", "ProxyJump=bastion", "-o",
          "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=/s/known_hosts", "-o",
          "ConnectionAttempts=2",
          "-o", "HostName=10.0.0.5", "-v", "--", "web-1", "uptime",
        ])
  }

  @Test func commandLineSettingsAreChecked() {
    #expect(SSHClientSettings(options: ["ServerAliveInterval=5"], jump: "ops@b:22,c").problem == nil)
    #expect(
      SSHClientSettings(options: ["ControlPath=/tmp/x"]).problem?.contains("Sixty sets it itself") == true)
    #expect(SSHClientSettings(options: ["NoEquals"]).problem?.contains("expected Key=Value") == true)
    #expect(SSHClientSettings(jump: "-oProxyCommand=x").problem?.contains("not valid") == true)
    #expect(SSHClientSettings(jump: "a b").problem != nil)
    #expect(SSHClientSettings(user: "-x").problem?.contains("The user -u '-x' is not valid") == true)
    #expect(SSHClientSettings(configFile: "-x").problem?.contains("starts with '-'") == true)
    // sixty ssh leaves the session's own habits to the operator, not the key or host key checking.
    #expect(SSHClientSettings(options: ["BatchMode=yes"]).problem(interactive: true) == nil)
    #expect(SSHClientSettings(options: ["BatchMode=yes"]).problem != nil)
    #expect(SSHClientSettings(options: ["StrictHostKeyChecking=no"]).problem(interactive: true) == nil)
    #expect(SSHClientSettings(options: ["StrictHostKeyChecking=no"]).problem != nil)
    #expect(SSHClientSettings(options: ["IdentityFile=/x"]).problem(interactive: true) != nil)
  }
}
