import Foundation
import Testing

@testable import SixtyAgentCore

/// `broker:` in agent.yml: one URL, a flow list `[a, b]` or a block list of `  - URL` lines; every
/// URL checked where it stands (file:line:column), at most eight.
@Suite struct AgentConfigBrokerListTests {
  static let rest = """
    instance_id: i-0123456789abcdef0
    token: "0123456789abcdef-token"
    broker_public_key: \(String(repeating: "A", count: 43))=
    """

  func parse(_ broker: String) throws -> AgentConfig {
    try AgentConfig.parse(broker + "\n" + Self.rest, file: "agent.yml")
  }

  func error(_ broker: String) -> String? {
    do {
      _ = try AgentConfig.parse(broker + "\n" + Self.rest, file: "agent.yml")
      return nil
    } catch {
      return error.description
    }
  }

  @Test func oneURLAsBefore() throws {
    let config = try parse("broker: http://127.0.0.1:8600")
    #expect(config.brokers.map(\.absoluteString) == ["http://127.0.0.1:8600"])
    #expect(config.broker.absoluteString == "http://127.0.0.1:8600")
  }

  @Test func aFlowList() throws {
    let config = try parse(
      #"broker: [http://b1:8600, "https://b2.example.com:8600/",'http://[::1]:9']  # replicas"#)
    #expect(
      config.brokers.map(\.absoluteString) == [
        "http://b1:8600", "https://b2.example.com:8600/", "http://[::1]:9",
      ])
    #expect(
      config.keysURL(user: "ops", broker: config.brokers[1])?.absoluteString
        == "https://b2.example.com:8600/agent/v1/keys?instance_id=i-0123456789abcdef0&user=ops")
  }

  @Test func aBlockList() throws {
    let config = try parse(
      """
      broker:
        - http://b1:8600   # first
        # a comment between items

        - "https://b2:8600"
      \t- http://b3:8600
      """)
    #expect(config.brokers.map(\.absoluteString) == ["http://b1:8600", "https://b2:8600", "http://b3:8600"])
    // The block list may come after the other keys too.
    let last = try AgentConfig.parse(
      Self.rest + "\nbroker:\n  - http://b1:8600\n  - http://b2:8600\n", file: "a.yml")
    #expect(last.brokers.count == 2)
  }

  @Test func eightAtMost() throws {
    let eight = (1...8).map { "http://b\($0):8600" }.joined(separator: ", ")
    #expect(try parse("broker: [\(eight)]").brokers.count == 8)
    let nine = (1...9).map { "http://b\($0):86" }.joined(separator: ", ")
    #expect(
      error("broker: [\(nine)]")
        == "agent.yml:1:122: 'broker' lists 9 URLs; at most 8 are allowed (each one that hangs takes its share of the timeout)."
    )
    let block = "broker:\n" + (1...9).map { "  - http://b\($0):8600" }.joined(separator: "\n")
    #expect(error(block)?.hasPrefix("agent.yml:10:5: 'broker' lists 9 URLs; at most 8") == true)
  }

  @Test(arguments: [
    (
      "broker: ftp://b1",
      "agent.yml:1:9: 'broker' is 'ftp://b1'; expected an http(s) URL with a host, like http://broker.example.com:8600."
    ),
    ("broker: []", "agent.yml:1:1: 'broker' is empty; expected an http(s) URL or a list of them."),
    ("broker:", "agent.yml:1:1: 'broker' is empty; expected an http(s) URL or a list of them."),
    (
      "broker: [http://b1:8600, , http://b2:8600]",
      "agent.yml:1:26: the list of 'broker' has an empty item (item 2); expected URLs separated by single commas."
    ),
    (
      "broker: [http://b1:8600,]",
      "agent.yml:1:25: the list of 'broker' has an empty item (item 2); expected URLs separated by single commas."
    ),
    (
      "broker: [http://b1:8600, http://b2:8600",
      "agent.yml:1:40: the list of 'broker' has no closing ']'; expected [URL, URL, …] on one line."
    ),
    (
      "broker: [http://b1:8600, file:///etc/shadow]",
      "agent.yml:1:26: 'broker' lists 'file:///etc/shadow' (item 2 of 2); expected an http(s) URL with a host, like http://broker.example.com:8600."
    ),
    (
      "broker: [http://b1:8600, http://]",
      "agent.yml:1:26: 'broker' lists 'http://' (item 2 of 2); expected an http(s) URL with a host, like http://broker.example.com:8600."
    ),
    (
      "broker: [http://b1:8600, http://bröker:8600]",
      "agent.yml:1:26: 'broker' lists 'http://br\\u{f6}ker:8600' (item 2 of 2); expected an http(s) URL in printable ASCII without spaces (an international host name in its xn-- form)."
    ),
    (
      "broker: [http://é.example:1, http://b2:8600]",
      "agent.yml:1:10: 'broker' lists 'http://\\u{e9}.example:1' (item 1 of 2); expected an http(s) URL in printable ASCII without spaces (an international host name in its xn-- form)."
    ),
    (
      "broker: [http://b1:8600, http://b\u{202E}2:8600]",
      "agent.yml:1:26: 'broker' lists 'http://b\\u{202e}2:8600' (item 2 of 2); expected an http(s) URL in printable ASCII without spaces (an international host name in its xn-- form)."
    ),
    (
      "broker: [http://b1:8600, http://b1:8600]",
      "agent.yml:1:26: 'broker' lists 'http://b1:8600' (item 2 of 2), which is listed twice; expected each broker once."
    ),
    (
      "broker:\n  - http://b1:8600\n  -\n",
      "agent.yml:3:4: 'broker' lists '' (item 2 of 2); expected an http(s) URL in printable ASCII without spaces (an international host name in its xn-- form)."
    ),
    (
      "broker:\n  - http://b1:8600\n  - 'http://b2 :8600'",
      "agent.yml:3:5: 'broker' lists 'http://b2 :8600' (item 2 of 2); expected an http(s) URL in printable ASCII without spaces (an international host name in its xn-- form)."
    ),
    (
      "broker: http://b1:8600\n  - http://b2:8600",
      "agent.yml:2:3: a list item, but no key above it waits for a list; expected 'key: value' at the top level."
    ),
    ("broker:\n  http://b1:8600", "agent.yml:2:1: expected 'key: value' at the top level."),
    ("broker: http://b1:8600\ntimeout:\n  - 1s", "agent.yml:3:3: 'timeout' takes one value, not a list."),
  ])
  func aBadBrokerIsNamedWhereItStands(broker: String, message: String) {
    #expect(error(broker) == message)
  }

  @Test func aMissingBrokerIsRequired() {
    #expect(throws: AgentConfig.Error.self) { try AgentConfig.parse(Self.rest, file: "agent.yml") }
  }

  @Test func handoffArgumentsAreIndexAndDeadline() {
    let handoff = AgentMain.parseHandoff("2@123456")
    #expect(handoff?.index == 2 && handoff?.deadline == 123.456)
    for bad in ["", "2", "@1", "2@", "-1@5", "9@5", "1@5@6", "a@5", "1@99999999999999999999"] {
      #expect(AgentMain.parseHandoff(bad) == nil, "\(bad)")
    }
    #expect(AgentMain.formatSeconds(0.375) == "0.38")
    #expect(AgentMain.formatSeconds(3) == "3.00")
    #expect(AgentMain.formatSeconds(1.05) == "1.05")
  }
}
