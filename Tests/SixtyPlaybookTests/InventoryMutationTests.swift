import SixtyCore
import SixtyPlaybook
import Testing

/// Hostile inventories and selectors: deterministic mutations of valid ones (the same every run)
/// must each end in an inventory or in positioned errors, never in a crash or a half result.
@Suite struct InventoryMutationTests {
  static let seeds = [
    "[web]\nweb[01:03].example.com ansible_user=deploy x='a b' l=\"[1, {'k': 2}]\"\n[prod:children]\nweb\n[prod:vars]\nn=0x10\n",
    "all:\n  vars: {d: example.com}\n  children:\n    web:\n      hosts:\n        web[a:c]: {ansible_port: 2222}\n",
    "web1.example.com\nops@[2001:db8::5]:2222\n# comment\nroot@10.0.0.7:22\n",
    "hosts:\n  web-1: {address: 10.0.0.1, tags: {role: web}}\ngroups:\n  web: {match: role=web}\n",
  ]
  static let alphabet = Array(
    "[]:,=#;'\"\\\n\r\t @&!{}()-_.0123456789abcxyz\u{0}\u{202E}\u{301}\u{928}\u{93F}é".unicodeScalars)

  /// A linear congruential generator: the same mutations on every run.
  struct Generator {
    var state: UInt64
    mutating func next(_ bound: Int) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int((state >> 33) % UInt64(max(bound, 1)))
    }
  }

  static func mutate(_ text: String, _ generator: inout Generator) -> String {
    var scalars = Array(text.unicodeScalars)
    for _ in 0..<(1 + generator.next(4)) {
      let at = generator.next(scalars.count + 1)
      switch generator.next(3) {
      case 0:
        scalars.insert(alphabet[generator.next(alphabet.count)], at: at)
      case 1:
        if at < scalars.count { scalars.removeSubrange(at..<min(scalars.count, at + 1 + generator.next(6))) }
      default:
        let end = min(scalars.count, at + generator.next(12))
        scalars.insert(contentsOf: scalars[at..<end], at: at)
      }
    }
    var view = String.UnicodeScalarView()
    view.append(contentsOf: scalars)
    return String(view)
  }

  @Test func mutatedInventoriesEndInAnInventoryOrPositionedErrors() {
    var generator = Generator(state: 0x5158_7459)
    var parsed = 0
    for seed in Self.seeds {
      for _ in 0..<1500 {
        let text = Self.mutate(seed, &generator)
        let (inventory, diagnostics) = InventoryFormat.parse(text: text, file: "inv")
        let errors = diagnostics.filter { $0.severity == .error }
        #expect((inventory == nil) == !errors.isEmpty, "\(text.debugDescription)")
        for diagnostic in diagnostics {
          if let location = diagnostic.location {
            #expect(location.line >= 1 && location.column >= 1, "\(diagnostic) for \(text.debugDescription)")
          }
        }
        if let inventory {
          parsed += 1
          for host in inventory.hosts {
            #expect(SafeText.isHostAddress(host.address), "\(host.address.debugDescription)")
            #expect(HostSelector.isName(host.name) && !host.name.hasPrefix("-"))
            #expect(host.user.map(SafeText.isUserName) ?? true)
          }
        }
      }
    }
    // The mutations are mild enough that many still read.
    #expect(parsed > 500)
  }

  @Test func mutatedSelectorsParseOrPointInsideTheText() {
    var generator = Generator(state: 0x0BAD_5EED)
    let seeds = ["web:db:&prod:!canary", "role=web,env!=prod:!web-[12]", "[fe80::1]:aws:x:y=z:&!db"]
    for seed in seeds {
      for _ in 0..<2000 {
        let text = Self.mutate(seed, &generator)
        do {
          let selector = try HostSelector(parsing: text)
          #expect(selector.text == text)
          #expect(!selector.alternatives.isEmpty || text.contains("!"))
        } catch {
          #expect(
            error.offset >= 0 && error.offset <= text.count, "\(error.offset) in \(text.debugDescription)")
        }
      }
    }
  }
}
