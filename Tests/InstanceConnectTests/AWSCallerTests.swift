import Foundation
import InstanceConnect
import Testing

@Suite struct AWSCallerTests {
  static let keys = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret/key")

  func caller(_ endpoint: String) -> AWSCaller {
    AWSCaller(
      service: "ec2", endpoint: URL(string: endpoint)!, region: "eu-west-1",
      credentials: Self.keys,
      transport: FakeTransport([]), retry: .none, clock: { Date(timeIntervalSince1970: 1_790_000_000) })
  }

  @Test func regionalEndpoints() {
    #expect(
      AWSCaller.regionalEndpoint("ec2", region: "eu-west-1").absoluteString
        == "https://ec2.eu-west-1.amazonaws.com")
    #expect(
      AWSCaller.regionalEndpoint("ec2", region: "cn-north-1", path: "/").absoluteString
        == "https://ec2.cn-north-1.amazonaws.com.cn/")
  }

  @Test func endpointsAreNamedWithoutTrailingSlashes() {
    #expect(caller("http://127.0.0.1:8600//").endpointDescription == "http://127.0.0.1:8600")
    #expect(
      caller("https://ec2.eu-west-1.amazonaws.com/").endpointDescription
        == "https://ec2.eu-west-1.amazonaws.com")
  }

  @Test func signedPostsSendAndSignOnlyHostAndTheGivenHeaders() throws {
    let request = caller("http://127.0.0.1:8600").signedPost(
      headers: [("Content-Type", "text/plain")], body: Array("a=b".utf8),
      date: Date(timeIntervalSince1970: 1_790_000_000), credentials: Self.keys)
    #expect(request.url.absoluteString == "http://127.0.0.1:8600/")
    #expect(request.method == "POST")
    #expect(request.body == Array("a=b".utf8))
    #expect(
      request.headers.map(\.name) == [
        "Host", "Content-Type", "X-Amz-Date", "Authorization",
      ])
    #expect(request.headers[0].value == "127.0.0.1:8600")
    let verified = try SigV4.verify(
      request: SigV4Request(method: "POST", path: "/", headers: request.headers, body: request.body),
      secretFor: { $0 == "AKIDEXAMPLE" ? "secret/key" : nil }, now: Date(timeIntervalSince1970: 1_790_000_030)
    )
    #expect(verified.service == "ec2")
  }

  @Test func hostsLeaveOutDefaultPortsAndBracketIPv6() {
    #expect(
      caller("https://ec2.eu-west-1.amazonaws.com:443/x").signedPost(
        headers: [], body: [], date: Date(), credentials: Self.keys
      )
      .headers[0].value == "ec2.eu-west-1.amazonaws.com")
    #expect(
      caller("https://ec2.eu-west-1.amazonaws.com/x").signedPost(
        headers: [], body: [], date: Date(), credentials: Self.keys
      ).url
        .absoluteString == "https://ec2.eu-west-1.amazonaws.com/x")
    #expect(
      caller("http://[::1]:8600").signedPost(headers: [], body: [], date: Date(), credentials: Self.keys)
        .headers[0].value
        == "[::1]:8600")
  }
}
