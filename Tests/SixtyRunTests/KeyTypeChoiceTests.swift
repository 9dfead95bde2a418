import Foundation
import InstanceConnect
import SixtyPolicy
import Synchronization
import Testing

@testable import SixtyRun

/// What a run takes from an endpoint's capabilities: the key type and the login mode.
@Suite struct KeyTypeChoiceTests {
  /// Continuations of requests that never get an answer (kept, never resumed).
  static let held = Mutex<[CheckedContinuation<Void, Never>]>([])

  func capabilities(_ json: String) -> EndpointCapabilities? { EndpointCapabilities.parse(Array(json.utf8)) }

  @Test func aSixtyBrokerGetsECDSAAndEveryOtherEndpointRSA() throws {
    let broker = try #require(
      capabilities(
        #"{"service":"sixty-broker","key_types":["ecdsa-sha2-nistp256","ssh-ed25519","ssh-rsa"],"preferred_key_type":"ecdsa-sha2-nistp256","operations":["SendSSHPublicKey"],"preferred_login":"key"}"#
      ))
    #expect(KeyTypeChoice.choose(broker).type == .ecdsa)
    #expect(KeyTypeChoice.choose(broker).reason.contains("sixty-broker"))
    #expect(KeyTypeChoice.choose(nil).type == .rsa)
    #expect(KeyTypeChoice.choose(nil).reason.contains("AWS documents RSA and Ed25519"))
    // A preferred type the endpoint does not list, or one Sixty does not make: the AWS default.
    let odd = try #require(
      capabilities(#"{"service":"x","key_types":["ssh-rsa"],"preferred_key_type":"ssh-dss"}"#))
    #expect(KeyTypeChoice.choose(odd).type == .rsa)
  }

  @Test func certificatesOnlyWhenTheEndpointSignsAndPrefersThem() throws {
    let prefers = capabilities(
      #"{"service":"sixty-broker","key_types":["ssh-ed25519"],"operations":["SendSSHPublicKey","SignSSHPublicKey"],"preferred_login":"certificate"}"#
    )
    #expect(KeyTypeChoice.mode(prefers) == .certificate)
    let cannot = capabilities(
      #"{"service":"sixty-broker","key_types":["ssh-ed25519"],"operations":["SendSSHPublicKey"],"preferred_login":"certificate"}"#
    )
    #expect(KeyTypeChoice.mode(cannot) == .key)
    #expect(KeyTypeChoice.mode(nil) == .key)
  }

  @Test(arguments: [
    "", "null", "[]", #"{"service":"x"}"#, #"{"key_types":["ssh-rsa"]}"#,
    #"{"service":"","key_types":[]}"#, #"{"service":"a b","key_types":[]}"#,
    #"{"service":"x","key_types":["ssh-rsa\n"]}"#, #"{"service":"x","key_types":"ssh-rsa"}"#,
    #"{"service":"\u00e9","key_types":[]}"#,
  ])
  func hostileAnswersAreNoCapabilities(_ text: String) {
    #expect(capabilities(text) == nil)
  }

  @Test func anOversizedAnswerIsNoCapabilities() {
    let big = #"{"service":"x","key_types":[],"pad":""# + String(repeating: "a", count: 20_000) + #""}"#
    #expect(capabilities(big) == nil)
  }

  @Test func anEndpointThatNeverAnswersCostsOnlyTheTimeout() async {
    struct Silent: HTTPTransport {
      func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        // Never answers and ignores cancellation, as a hung connection in URLSession may: the
        // question must end on its own timer (or this test would never end).
        await withCheckedContinuation { continuation in
          KeyTypeChoiceTests.held.withLock { $0.append(continuation) }
        }
        throw CancellationError()
      }
    }
    let answer = await EndpointCapabilities.ask(
      [URL(string: "http://127.0.0.1:9")!], transport: Silent(), timeout: 0.2)
    #expect(answer == nil)
  }

}
