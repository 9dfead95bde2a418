import Foundation
import Testing

@testable import SixtyAgentCore

/// The agent's own text helpers (it links FoundationEssentials only, which lacks
/// `trimmingCharacters(in:)`, `CharacterSet` and `String(format:)`).
@Suite struct AgentTextTests {
  @Test func expiryTimesAreSshdsMinuteFormatRoundedUp() {
    #expect(SignedKeyList.expiryTime(0) == "197001010000Z")
    #expect(SignedKeyList.expiryTime(1_700_000_001) == "202311142214Z")
    #expect(SignedKeyList.expiryTime(1_700_000_040) == "202311142214Z")
    #expect(SignedKeyList.expiryTime(4_102_444_740) == "209912312359Z")
  }

  @Test func queryValuesKeepOnlyUnreservedCharacters() {
    #expect("ec2-user".percentEncodedForQuery == "ec2-user")
    #expect("a.b_c~d".percentEncodedForQuery == "a.b_c~d")
    #expect("a b&c=d/é@$".percentEncodedForQuery == "a%20b%26c%3Dd%2F%C3%A9%40%24")
  }

  @Test func trimmingKeepsInnerSpaceAndLineBreaksUnlessAsked() {
    #expect("  a b \t".trimmingSpace() == "a b")
    #expect(" \n a \n".trimmingSpace() == "\n a \n")
    #expect(" \r\n a \n".trimmingSpace(newlines: true) == "a")
    #expect("   ".trimmingSpace() == "")
    #expect("x"[...].trimmingSpace() == "x")
  }

  @Test func theKeysURLCarriesTheInstanceAndTheEncodedUser() throws {
    let config = try AgentConfig.parse(
      """
      broker: http://127.0.0.1:8600/   # trailing slash and a comment
      instance_id: i-0123456789abcdef0
      token: "0123456789abcdef-token"
      broker_public_key: \(String(repeating: "A", count: 43))=
      timeout: 2s
      """, file: "agent.yml")
    #expect(config.timeout == 2)
    #expect(config.token == "0123456789abcdef-token")
    #expect(
      config.keysURL(user: "deploy@corp")?.absoluteString
        == "http://127.0.0.1:8600/agent/v1/keys?instance_id=i-0123456789abcdef0&user=deploy%40corp")
  }
}

/// `agent.yml` with the token inline is a secret, refused when others can read it (as ssh
/// refuses such a private key); with `token_file` its mode is free.
@Suite struct AgentConfigModeTests {
  @Test func anInlineTokenNeedsAFileOnlyItsOwnerCanRead() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "sixty-agent-cfg-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let common = """
      broker: http://127.0.0.1:8600
      instance_id: i-0123456789abcdef0
      broker_public_key: \(String(repeating: "A", count: 43))=

      """
    let inline = directory + "/inline.yml"
    try (common + "token: 0123456789abcdef-token\n").write(toFile: inline, atomically: true, encoding: .utf8)
    for mode: mode_t in [0o644, 0o640, 0o604] {
      chmod(inline, mode)
      let error = #expect(throws: AgentConfig.Error.self) { try AgentConfig.load(path: inline) }
      #expect(
        error?.description
          == "the agent configuration \(inline) holds secrets inline (the agent token) and is readable by others (mode 0\(String(mode, radix: 8))); chmod 600 it (owned by the user sshd runs the agent as) or use token_file."
      )
    }
    chmod(inline, 0o600)
    #expect(try AgentConfig.load(path: inline).token == "0123456789abcdef-token")
    let tokenFile = directory + "/token"
    try "0123456789abcdef-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
    chmod(tokenFile, 0o600)
    let viaFile = directory + "/file.yml"
    try (common + "token_file: \(tokenFile)\n").write(toFile: viaFile, atomically: true, encoding: .utf8)
    chmod(viaFile, 0o644)
    #expect(try AgentConfig.load(path: viaFile).token == "0123456789abcdef-token")
  }
}
