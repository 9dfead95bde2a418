import Foundation
import SixtyCore
import SixtyPlaybook
import Testing

/// `-i` reading Ansible INI and YAML inventories, pssh hosts files and inline lists.
@Suite struct AnsibleInventoryTests {
  /// Writes `text` to a temporary file named `name`, loads it as `-i` would, and removes it.
  func load(_ text: String, name: String = "hosts") throws -> (Inventory?, [String]) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-inv-\(UUID().uuidString)")
      .path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/" + name
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    let (inventory, diagnostics) = InventoryParser.load(path: path)
    return (inventory, diagnostics.map { $0.description.replacingOccurrences(of: dir + "/", with: "") })
  }

  let ini = """
    # Ansible INI
    bastion.example.com ansible_port=2222 ansible_user=jump
    [web]
    web[01:03].example.com
    web-x ansible_host=10.0.1.9 http_port=8080 enabled=True debug=FALSE ratio=0x10 label='two words' ports="[80, 443]" zero=01
    [db]
    db-[a:c] ansible_host=10.0.3.1
    [prod:children]
    web  # the web tier
    db
    [prod:vars]
    ansible_user=deploy
    ntp='ntp.example.com'
    retries=3
    [web:vars]
    ansible_user=www
    [all:vars]
    domain=example.com
    """

  @Test func iniGroupsChildrenVarsAndRanges() throws {
    let (loaded, diagnostics) = try load(ini)
    #expect(diagnostics.isEmpty)
    let inventory = try #require(loaded)
    #expect(
      inventory.hosts.map(\.name) == [
        "bastion.example.com", "web01.example.com", "web02.example.com", "web03.example.com", "web-x", "db-a",
        "db-b", "db-c",
      ])
    let bastion = try #require(inventory.host(named: "bastion.example.com"))
    #expect(bastion.port == 2222)
    #expect(bastion.user == "jump")
    #expect(bastion.address == "bastion.example.com")
    #expect(bastion.groups == ["ungrouped"])
    let web = try #require(inventory.host(named: "web-x"))
    #expect(web.address == "10.0.1.9")
    // The child group's ansible_user wins over the parent's.
    #expect(web.user == "www")
    #expect(web.groups == ["prod", "web"])
    #expect(web.vars["http_port"] == .string("8080"))
    // Python literals as Ansible's INI parser reads them; other values stay text.
    #expect(web.vars["enabled"] == .string("True"))
    #expect(web.vars["debug"] == .string("FALSE"))
    #expect(web.vars["ratio"] == .string("16"))
    #expect(web.vars["label"] == .string("two words"))
    #expect(web.vars["ports"] == .list([.string("80"), .string("443")]))
    #expect(web.vars["zero"] == .string("01"))
    let db = try #require(inventory.host(named: "db-b"))
    #expect(db.address == "10.0.3.1")
    #expect(db.user == "deploy")
    #expect(inventory.groups["prod"]?.vars["ntp"] == .string("ntp.example.com"))
    #expect(inventory.groups["prod"]?.vars["retries"] == .string("3"))
    #expect(inventory.vars["domain"] == .string("example.com"))
    #expect(inventory.groups["prod"]?.hosts.count == 7)
  }

  @Test func iniErrorsNameFileLineAndColumn() throws {
    let (inventory, diagnostics) = try load(
      """
      [web]
      web1 ansible_port=99999
      web2 oops
      web3 name='unclosed
      [web:nonsense]
      [db:vars]
      x=1
      [big]
      h[0:100000]
      """)
    #expect(inventory == nil)
    #expect(
      diagnostics.contains(
        "hosts:3:6: error: 'oops' after the host 'web2' is not a variable; expected key=value."))
    #expect(
      diagnostics.contains {
        $0.hasPrefix("hosts:4:11: error: the line has a quote (') that is never closed")
      })
    #expect(
      diagnostics.contains(
        "hosts:5:1: error: the section '[web:nonsense]' has an unknown type 'nonsense'; expected [group], [group:vars] or [group:children]."
      ))
    #expect(
      diagnostics.contains {
        $0.hasPrefix("hosts:6:1: error: the section [db:vars] sets variables of the group 'db'")
      })
    #expect(
      diagnostics.contains(
        "hosts:9:1: error: the host pattern 'h[0:100000]' expands to more than 100000 hosts; expected a smaller range."
      ))
    #expect(
      diagnostics.contains(
        "hosts:2:6: error: the ansible_port '99999' of host 'web1' is not a port; expected a whole number from 1 to 65535."
      ))
  }

  @Test func yamlInventory() throws {
    let (loaded, diagnostics) = try load(
      """
      all:
        vars:
          domain: example.com
        hosts:
          bastion:
            ansible_ssh_host: 192.0.2.1
            ansible_ssh_port: 2200
            instance_id: i-0123456789abcdef0
            placement: {availability_zone: eu-west-1a}
            tags: {role: jump, Name: bastion, "bad key": x, nested: {a: b}}
        children:
          web:
            hosts:
              web[1:3]:
                ansible_user: deploy
                sizes: [1, 2]
            vars:
              flag: yes
          prod:
            children:
              web:
              db:
                hosts:
                  db1:
      """, name: "inv.yml")
    #expect(diagnostics.isEmpty)
    let inventory = try #require(loaded)
    #expect(inventory.hosts.map(\.name) == ["bastion", "web1", "web2", "web3", "db1"])
    let bastion = try #require(inventory.host(named: "bastion"))
    #expect(bastion.address == "192.0.2.1")
    #expect(bastion.port == 2200)
    #expect(bastion.groups == ["ungrouped"])
    #expect(bastion.instanceID == "i-0123456789abcdef0")
    #expect(bastion.zone == "eu-west-1a")
    #expect(bastion.tags == ["role": "jump", "Name": "bastion"])
    #expect(try inventory.select(HostSelector(parsing: "role=jump")).map(\.name) == ["bastion"])
    let web2 = try #require(inventory.host(named: "web2"))
    #expect(web2.user == "deploy")
    #expect(web2.vars["sizes"] == .list([.string("1"), .string("2")]))
    #expect(web2.groups == ["prod", "web"])
    #expect(inventory.groups["web"]?.vars["flag"] == .string("yes"))
    #expect(inventory.groups["prod"]?.hosts == ["web1", "web2", "web3", "db1"])
    #expect(inventory.vars["domain"] == .string("example.com"))
  }

  @Test func yamlInventoryErrors() throws {
    let (inventory, diagnostics) = try load(
      """
      all:
        children:
          web:
            hosts: [a, b]
            childs: {}
          db:
            hosts:
              db-1: {ansible_host: "a b", host: x}
              db-2: {instance_id: "$(x)"}
      """, name: "inv.yml")
    #expect(inventory == nil)
    #expect(
      diagnostics.contains(
        "inv.yml:4:14: error: 'hosts' of the group 'web' is a list; expected a mapping of host names (or patterns like web[01:20]) to their variables."
      ))
    #expect(
      diagnostics.contains { $0.hasPrefix("inv.yml:5:7: error: unknown key 'childs' in the group 'web'") })
    #expect(diagnostics.contains { $0.hasPrefix("inv.yml:8:37: error: 'host' is reserved for host facts") })
    #expect(
      diagnostics.contains { $0.hasPrefix("inv.yml:8:30: error: the ansible_host 'a b' of host 'db-1'") })
    #expect(
      diagnostics.contains { $0.hasPrefix("inv.yml:9:29: error: the instance_id '$(x)' of host 'db-2'") })
  }

  @Test func psshHostsFile() throws {
    let (loaded, diagnostics) = try load(
      """
      # pssh
      web1.example.com
        ops@web2.example.com:2222

      [2001:db8::5]:22
      root@[::1]
      10.0.0.7   # a comment
      ops@web1.example.com
      """)
    #expect(diagnostics.isEmpty)
    let inventory = try #require(loaded)
    #expect(
      inventory.hosts.map(\.name) == [
        "web1.example.com", "web2.example.com", "2001:db8::5", "::1", "10.0.0.7", "ops@web1.example.com",
      ])
    let web2 = try #require(inventory.host(named: "web2.example.com"))
    #expect(web2.user == "ops")
    #expect(web2.port == 2222)
    #expect(inventory.host(named: "2001:db8::5")?.address == "2001:db8::5")
    #expect(inventory.host(named: "::1")?.user == "root")
    #expect(inventory.host(named: "ops@web1.example.com")?.address == "web1.example.com")
    let (_, errors) = try load("web1\n-oProxyCommand=x\nweb1\n")
    #expect(
      errors.contains {
        $0.hasPrefix("hosts:2:1: error: '-oProxyCommand=x' is not a host name or IP address")
      })
    #expect(
      errors.contains(
        "hosts:3:1: error: 'web1' is listed twice (first at hosts:1:1); expected each host once."))
  }

  @Test func inlineLists() throws {
    let (two, diagnostics) = InventoryParser.load(path: "web1, web2:2222,")
    #expect(diagnostics.isEmpty)
    #expect(two?.hosts.map(\.name) == ["web1", "web2"])
    #expect(two?.host(named: "web2")?.port == 2222)
    #expect(InventoryParser.load(path: "host1,").0?.hosts.map(\.name) == ["host1"])
    let bad = InventoryParser.load(path: "web1,$(reboot),")
    #expect(bad.0 == nil)
    #expect(
      bad.1.map(\.description).first?.hasPrefix("-i:1:6: error: '$(reboot)' is not a host name") == true)
    #expect(InventoryParser.load(path: ",,").1.first?.message.contains("names no host") == true)
    #expect(
      InventoryParser.load(path: "host1").1.map(\.message) == [
        "cannot read 'host1': it does not exist (for a list of hosts, end it with a comma: -i 'host1,')."
      ])
  }

  @Test func nativeInventoriesKeepWorkingAndUnknownShapesAreExplained() throws {
    let (native, diagnostics) = try load(
      "hosts:\n  web-1: {address: 10.0.0.1, tags: {role: web}}\ngroups:\n  web: {match: role=web}\n",
      name: "inv.yml")
    #expect(diagnostics.isEmpty)
    #expect(native?.host(named: "web-1")?.groups == ["web"])
    let (_, neither) = try load("servers:\n  - a\n", name: "inv.yml")
    #expect(neither.count == 1)
    #expect(
      neither.first?.hasPrefix("inv.yml:1:1: error: the inventory's top-level key 'servers' is neither")
        == true)
    #expect(neither.first?.contains("a pssh hosts file") == true)
    let (_, typo) = try load("hots:\n  web-1: {address: 10.0.0.1}\nvars: {}\n", name: "inv.yml")
    #expect(
      typo.contains {
        $0.hasPrefix("inv.yml:1:1: error: unknown key 'hots' in the inventory (did you mean 'hosts'?)")
      })
    let (_, empty) = try load("# nothing\n\n")
    #expect(empty.first?.contains("the inventory is empty") == true)
  }

  @Test func selectorsWorkOnAnsibleGroups() throws {
    let (loaded, _) = try load(ini)
    let inventory = try #require(loaded)
    let picked = try inventory.select(HostSelector(parsing: "prod:!db:&web")).map(\.name)
    #expect(picked == ["web01.example.com", "web02.example.com", "web03.example.com", "web-x"])
    #expect(try inventory.select(HostSelector(parsing: "ungrouped")).map(\.name) == ["bastion.example.com"])
  }

  @Test func windowsLineEndingsAndWideGroups() throws {
    let (ini, iniErrors) = try load("[web]\r\nweb1 a=1\r\nweb2\r\n[web:vars]\r\nb=2\r\n")
    #expect(iniErrors.isEmpty)
    #expect(ini?.hosts.map(\.name) == ["web1", "web2"])
    #expect(ini?.host(named: "web1")?.vars["a"] == .string("1"))
    #expect(ini?.groups["web"]?.vars["b"] == .string("2"))
    let (pssh, psshErrors) = try load("a.example.com\r\nops@b.example.com:2222\r\n")
    #expect(psshErrors.isEmpty)
    #expect(pssh?.hosts.map(\.name) == ["a.example.com", "b.example.com"])
    // 20,000 children of one group, each listed twice: read once each, without a quadratic search.
    let children = (0..<20_000).map { "g\($0)" }
    let text = "[top:children]\n" + (children + children).joined(separator: "\n") + "\n[g1]\nh1\n"
    let (wide, wideErrors) = try load(text)
    #expect(wideErrors.isEmpty)
    #expect(wide?.groups["top"]?.hosts == ["h1"])
    #expect(wide?.host(named: "h1")?.groups == ["top", "g1"])
  }

  @Test func cyclesOfChildrenAreReported() throws {
    let (inventory, diagnostics) = try load("[a:children]\nb\n[b:children]\na\n[a]\nh\n")
    #expect(inventory == nil)
    #expect(diagnostics.contains { $0.contains("is its own descendant") })
  }

  @Test func pythonLiteralsAndRanges() throws {
    let (loaded, _) = try load(
      """
      [g]
      h a=1_000 b=-5 c=1.5 d=None e="{'k': [1, 'x']}" f=0o17 g=True h=yes i="(1,)" j=1e3
      n[8:12:2]
      """)
    let inventory = try #require(loaded)
    let vars = try #require(inventory.host(named: "h")).vars
    #expect(vars["a"] == .string("1000"))
    #expect(vars["b"] == .string("-5"))
    #expect(vars["c"] == .string("1.5"))
    #expect(vars["d"] == .string(""))
    #expect(vars["e"] == .map(["k": .list([.string("1"), .string("x")])]))
    #expect(vars["f"] == .string("15"))
    #expect(vars["g"] == .string("True"))
    #expect(vars["h"] == .string("yes"))
    #expect(vars["i"] == .list([.string("1")]))
    #expect(vars["j"] == .string("1000.0"))
    #expect(inventory.hosts.map(\.name) == ["h", "n8", "n10", "n12"])
  }
}
