import SixtyCore
import SixtyPlaybook
import Testing

/// `proxy_jump` and `ssh_options` of hosts and groups: checked, and in the order ssh needs.
@Suite struct InventorySSHOptionsTests {
  func parse(_ yaml: String) -> (Inventory, [String]) {
    let (node, diagnostics) = YAMLLoader.parse(text: yaml, file: "inv.yml")
    var reader = NodeReader()
    reader.diagnostics.append(contentsOf: diagnostics)
    let inventory = InventoryParser.parse(node!, file: "inv.yml", reader: &reader)
    return (inventory, reader.diagnostics.all.map(\.description))
  }

  @Test func hostOptionsComeFirstThenTheLaterGroupsOptions() throws {
    let (inventory, diagnostics) = parse(
      """
      hosts:
        web-1:
          address: 10.0.0.1
          proxy_jump: ops@bastion-1:2200
          ssh_options: [ServerAliveInterval=5]
          tags: {role: web}
        web-2: {port: 2222, tags: {role: web}}
      groups:
        web: {match: role=web, ssh_options: ["Compression=yes"], proxy_jump: bastion-web}
        all-dc: {hosts: [web-1, web-2], ssh_options: ["ConnectionAttempts=3"]}
      """)
    #expect(diagnostics.isEmpty, "\(diagnostics)")
    let web1 = try #require(inventory.host(named: "web-1"))
    #expect(
      web1.sshOptions == [
        "ProxyJump=ops@bastion-1:2200", "ServerAliveInterval=5", "ConnectionAttempts=3",
        "ProxyJump=bastion-web",
        "Compression=yes",
      ])
    #expect(!web1.portIsSet)
    let web2 = try #require(inventory.host(named: "web-2"))
    #expect(web2.sshOptions == ["ConnectionAttempts=3", "ProxyJump=bastion-web", "Compression=yes"])
    #expect(web2.portIsSet && web2.user == nil)
  }

  @Test func defaultsPortCountsAsSet() throws {
    let (inventory, _) = parse("defaults: {port: 22}\nhosts:\n  a: {}\n")
    #expect(inventory.host(named: "a")?.portIsSet == true)
  }

  @Test(arguments: [
    ("ProxyCommand=nc %h %p", "run a program on the machine running Sixty"),
    ("LocalCommand=touch /tmp/x", "run a program on the machine running Sixty"),
    ("PermitLocalCommand=yes", "run a program on the machine running Sixty"),
    ("KnownHostsCommand=/bin/x", "run a program on the machine running Sixty"),
    ("Match exec true", "run a program on the machine running Sixty"),
    ("PKCS11Provider=/tmp/evil.so", "run a program on the machine running Sixty"),
    ("proxycommand=x", "run a program on the machine running Sixty"),
    ("ControlPath=/tmp/x", "Sixty sets it itself"),
    ("StrictHostKeyChecking=no", "Sixty sets it itself"),
    ("IdentityFile=~/.ssh/id", "Sixty sets it itself"),
    ("RemoteForward=8080 localhost:80", "not one of the options an inventory may set"),
    ("ForwardAgent=yes", "not one of the options an inventory may set"),
    ("ServerAliveInterval", "expected Key=Value"),
    ("ServerAliveInterval=5\nProxyCommand=x", "expected Key=Value"),
    ("ProxyJump=-oProxyCommand=x", "is not a host name or IP address"),
  ])
  func refusedOptionsNameTheLineAndSayWhy(_ option: String, _ why: String) {
    let quoted = "\"" + option.replacingOccurrences(of: "\n", with: "\\n") + "\""
    let (inventory, diagnostics) = parse("hosts:\n  web-1: {ssh_options: [\(quoted)]}\n")
    #expect(inventory.hosts.isEmpty)
    #expect(diagnostics.count == 1, "\(diagnostics)")
    #expect(diagnostics.first?.hasPrefix("inv.yml:2:") == true, "\(diagnostics)")
    #expect(diagnostics.first?.contains(why) == true, "\(diagnostics)")
  }

  @Test(arguments: ["-oProxyCommand=x", "a b", "bastion:99999", "bad user@b", "b;touch x"])
  func badJumpHostsAreRefused(_ jump: String) {
    let (_, diagnostics) = parse("hosts:\n  web-1: {proxy_jump: \"\(jump)\"}\n")
    #expect(diagnostics.first?.contains("the proxy_jump") == true, "\(diagnostics)")
  }

  @Test func groupOptionsAreCheckedToo() {
    let (_, diagnostics) = parse(
      "hosts:\n  a: {}\ngroups:\n  g: {hosts: [a], ssh_options: [\"LocalCommand=x\"]}\n")
    #expect(diagnostics.count == 1 && diagnostics[0].hasPrefix("inv.yml:4:"), "\(diagnostics)")
  }
}
