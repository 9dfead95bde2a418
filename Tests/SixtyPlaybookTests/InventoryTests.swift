import SixtyCore
import SixtyPlaybook
import Testing

@Suite struct InventoryTests {
  func parse(_ yaml: String) -> (Inventory, [String]) {
    let (node, diagnostics) = YAMLLoader.parse(text: yaml, file: "inv.yml")
    var reader = NodeReader()
    reader.diagnostics.append(contentsOf: diagnostics)
    let inventory = InventoryParser.parse(node!, file: "inv.yml", reader: &reader)
    return (inventory, reader.diagnostics.all.map(\.description))
  }

  let sample = """
    vars: {domain: example.com}
    defaults: {user: ops, port: 2222}
    hosts:
      web-1: {address: 10.0.0.1, tags: {role: web, env: prod}}
      web-2: {address: 10.0.0.2, tags: {role: web, env: staging}, port: 22}
      db-1: {address: 10.0.0.3, user: postgres, tags: {role: db, env: prod}, instance_id: i-0123456789abcdef0}
    groups:
      web: {match: role=web}
      prod: {match: env=prod}
      canary: {hosts: [web-2]}
    """

  @Test func aHostReachedByItsNameNeedsANameSSHTakesAsAHostAndNothingElse() throws {
    let (inventory, diagnostics) = parse(
      """
      hosts:
        root@evil: {instance_id: i-0123456789abcdef0}
        root@ok: {address: 10.0.0.9}
        web-1.example.com:
        web-2:
      """)
    #expect(
      diagnostics == [
        "inv.yml:2:3: error: the host 'root@evil' has no 'address', and its name is not a host name or IP address to connect to; expected 'address: …' (like 10.0.0.5 or web-1.example.com), or a name of ASCII letters, digits, '.', '-', '_' and ':'."
      ])
    #expect(inventory.hosts.map(\.name) == ["root@ok", "web-1.example.com", "web-2"])
    #expect(inventory.host(named: "root@ok")?.address == "10.0.0.9")
  }

  @Test func hostsGroupsAndDefaults() throws {
    let (inventory, diagnostics) = parse(sample)
    #expect(diagnostics.isEmpty)
    #expect(inventory.hosts.map(\.name) == ["web-1", "web-2", "db-1"])
    let web1 = try #require(inventory.host(named: "web-1"))
    #expect(web1.port == 2222)
    #expect(web1.user == "ops")
    #expect(web1.groups == ["web", "prod"])
    #expect(inventory.host(named: "db-1")?.user == "postgres")
    #expect(inventory.host(named: "web-2")?.port == 22)
  }

  @Test(arguments: [
    ("all", ["web-1", "web-2", "db-1"]),
    ("web", ["web-1", "web-2"]),
    ("web,prod", ["web-1"]),
    ("role=web,env=staging", ["web-2"]),
    ("web-*", ["web-1", "web-2"]),
    ("!web", ["db-1"]),
    ("env!=prod", ["web-2"]),
    ("db-1", ["db-1"]),
    ("canary", ["web-2"]),
  ])
  func selectors(selector: String, expected: [String]) throws {
    let (inventory, _) = parse(sample)
    #expect(try inventory.select(HostSelector(parsing: selector)).map(\.name) == expected)
  }

  @Test func unionOfSelectors() throws {
    let (inventory, _) = parse(sample)
    #expect(try inventory.select(HostSelector(union: ["canary", "db-1"])).map(\.name) == ["web-2", "db-1"])
  }

  @Test func unknownNameSuggests() throws {
    let (inventory, _) = parse(sample)
    #expect(throws: Inventory.UnknownName.self) { try inventory.select(HostSelector(parsing: "wbe")) }
  }

  @Test func hostileNamesAreRejected() {
    let (_, diagnostics) = parse(
      """
      hosts:
        -oProxyCommand=x: {address: 10.0.0.1}
        ok: {address: "10.0.0.1; reboot", user: "-oProxyCommand=sh"}
      """)
    #expect(
      diagnostics == [
        "inv.yml:2:3: error: '-oProxyCommand=x' is not a valid host name; expected letters, digits, '.', '-', '_' or ':', not starting with '-'.",
        "inv.yml:3:17: error: the address '10.0.0.1; reboot' of host 'ok' is not a host name or IP address; expected ASCII letters, digits, '.', '-', ':' (like 10.0.0.5, web-1.example.com or [fe80::1%eth0]), not starting with '-'.",
        "inv.yml:3:43: error: '-oProxyCommand=sh' is not a valid user name; expected up to 32 ASCII letters, digits, '.', '_', '-' or '@' (and '$' at the end), not starting with '-'.",
      ])
  }

  /// `$` or `;` with a combining mark glued to it is one Swift `Character` that is neither, yet
  /// every shell and ssh reads its first byte as `$` or `;`: the checks work on bytes.
  @Test func gluedMetacharactersAreRejected() {
    let (_, diagnostics) = parse(
      """
      hosts:
        a: {address: "a$\\u0301(id)"}
        b: {address: "10.0.0.1;\\u0301reboot"}
        c: {address: "10.0.0.1", user: "ops$\\u0301(id)"}
        d: {address: "caf\\u00E9.example.com"}
      """)
    #expect(diagnostics.count == 4, "\(diagnostics)")
    #expect(diagnostics.allSatisfy { $0.contains("error:") })
    #expect(diagnostics[0].hasPrefix("inv.yml:2:16: error: the address 'a$\u{301}(id)' of host 'a' is not"))
    #expect(diagnostics[2].hasPrefix("inv.yml:4:34: error: 'ops$\u{301}(id)' is not a valid user name"))
  }

  @Test func structuralErrors() {
    let (_, diagnostics) = parse(
      """
      hosts:
        a: {adress: 1.2.3.4, port: 70000}
      groups:
        g: {}
        a: {hosts: [a]}
        h: {hosts: [b]}
      """)
    #expect(
      diagnostics == [
        "inv.yml:2:7: error: unknown key 'adress' in host 'a' (did you mean 'address'?); expected one of: address, port, user, instance_id, zone, tags, vars, proxy_jump, ssh_options.",
        "inv.yml:2:30: error: 'port' of host 'a' is 70000; expected a number from 1 to 65535.",
        "inv.yml:4:3: error: the group 'g' has neither 'hosts' nor 'match'; expected at least one.",
        "inv.yml:5:3: error: the group 'a' has the same name as a host; expected distinct names so selectors stay unambiguous.",
        "inv.yml:6:15: error: the group 'h' lists an unknown host 'b'.",
      ])
  }

  @Test func reservedVariableName() {
    let (_, diagnostics) = parse("vars: {host: x, bad-name: y}\nhosts: {a: }\n")
    #expect(
      diagnostics == [
        "inv.yml:1:8: error: 'host' is reserved for host facts (host.name, host.address, …); choose another variable name.",
        "inv.yml:1:17: error: 'bad-name' is not a valid variable name; expected letters, digits and '_'.",
      ])
  }
}
