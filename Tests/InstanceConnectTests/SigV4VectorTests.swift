import Foundation
import InstanceConnect
import Testing

/// The official AWS Signature Version 4 test suite (Resources/sigv4, with its LICENSE and NOTICE).
@Suite struct SigV4VectorTests {
  static let root = TestResources.url("sigv4")
  static let credentials = AWSCredentials(
    accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
  static let token =
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

  /// Every case folder (one holding NAME.req), relative to the suite root.
  static var cases: [String] {
    let enumerator = FileManager.default.enumerator(atPath: root.path)!
    var names: [String] = []
    while let item = enumerator.nextObject() as? String {
      if item.hasSuffix(".req") { names.append((item as NSString).deletingLastPathComponent) }
    }
    return names.sorted()
  }

  /// Every case of the suite runs; none is skipped.
  struct Vector {
    var request: SigV4Request
    var creq: String
    var sts: String
    var authz: String
  }

  static func load(_ name: String) throws -> Vector {
    let base = root.appendingPathComponent(name)
    let file = (name as NSString).lastPathComponent
    func read(_ ext: String) throws -> String {
      try String(contentsOf: base.appendingPathComponent("\(file).\(ext)"), encoding: .utf8)
    }
    let raw = try read("req")
    var lines = raw.components(separatedBy: "\n")
    let requestLine = lines.removeFirst()
    let method = String(requestLine.prefix { $0 != " " })
    var target = String(requestLine.dropFirst(method.count + 1))
    if let range = target.range(of: " HTTP/", options: .backwards) {
      target = String(target[..<range.lowerBound])
    }
    let path: String
    let query: String
    if let q = target.firstIndex(of: "?") {
      path = String(target[..<q])
      query = String(target[target.index(after: q)...])
    } else {
      path = target
      query = ""
    }
    var headers: [(name: String, value: String)] = []
    var bodyLines: [String] = []
    var inBody = false
    for line in lines {
      if inBody {
        bodyLines.append(line)
      } else if line.isEmpty {
        inBody = true
      } else if line.first == " " || line.first == "\t", !headers.isEmpty {
        headers[headers.count - 1].value += "\n" + line  // folded continuation line
      } else if let colon = line.firstIndex(of: ":") {
        headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
      }
    }
    let body = Array(bodyLines.joined(separator: "\n").utf8)
    if name == "get-vanilla-with-session-token" {
      // This case's .req omits the token header that signing with session credentials adds.
      headers.append(
        ("X-Amz-Security-Token", "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"))
    }
    return Vector(
      request: SigV4Request(method: method, path: path, query: query, headers: headers, body: body),
      creq: try read("creq"), sts: try read("sts"), authz: try read("authz"))
  }

  @Test func signAddsDateTokenAndAuthorization() throws {
    var request = SigV4Request(
      method: "GET", path: "/", headers: [("Host", "example.amazonaws.com")], body: [])
    var credentials = Self.credentials
    credentials.sessionToken = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
    SigV4.sign(
      &request, credentials: credentials, region: "us-east-1", service: "service",
      date: Date(timeIntervalSince1970: 1_440_938_160))
    let expected = try Self.load("get-vanilla-with-session-token")
    #expect(request.header("authorization") == expected.authz)
    #expect(request.header("x-amz-date") == "20150830T123600Z")
    #expect(!credentials.description.contains("wJalr"))
    #expect(!credentials.description.contains("6e86"))
  }

  @Test func suiteIsPresent() {
    #expect(Self.cases.count >= 25)
    #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("LICENSE").path))
    #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("NOTICE").path))
  }

  @Test(arguments: SigV4VectorTests.cases)
  func vector(name: String) throws {
    let v = try Self.load(name)
    let (creq, _) = SigV4.canonicalRequest(v.request)
    #expect(creq == v.creq, "canonical request of \(name)")
    let sts = SigV4.stringToSign(
      canonicalRequest: creq, amzDate: "20150830T123600Z", scope: "20150830/us-east-1/service/aws4_request")
    #expect(sts == v.sts, "string to sign of \(name)")
    let authz = SigV4.authorization(
      for: v.request, credentials: Self.credentials, region: "us-east-1", service: "service",
      amzDate: "20150830T123600Z")
    #expect(authz == v.authz, "authorization of \(name)")
  }

  @Test(arguments: SigV4VectorTests.cases)
  func vectorVerifies(name: String) throws {
    var v = try Self.load(name)
    v.request.headers.append(("Authorization", v.authz))
    let now = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z
    let verified = try SigV4.verify(
      request: v.request, secretFor: { $0 == "AKIDEXAMPLE" ? Self.credentials.secretAccessKey : nil },
      now: now)
    #expect(verified.accessKeyID == "AKIDEXAMPLE")
    #expect(verified.service == "service")
  }

  /// The header is read on bytes: a separator with a combining mark glued to it still separates,
  /// non-ASCII digits are no date, and the fields are the same however they are ordered or
  /// spaced.
  @Test func theAuthorizationHeaderIsParsedOnBytes() throws {
    let signature = String(repeating: "ab", count: 32)
    let plain = try SigV4.parseAuthorization(
      "AWS4-HMAC-SHA256 Credential=AKID/20261204/us-east-1/ec2-instance-connect/aws4_request, SignedHeaders=host;x-amz-date, Signature=\(signature)"
    )
    let respelled = try SigV4.parseAuthorization(
      "AWS4-HMAC-SHA256 Signature=\(signature),SignedHeaders=host;x-amz-date,\tCredential=AKID/20261204/us-east-1/ec2-instance-connect/aws4_request"
    )
    #expect(plain == respelled)
    // ",\u{301}" is one Character but two things to a parser that reads bytes: a separator, then
    // a key that starts with U+0301 (no such field).
    #expect(throws: SigV4Error.self) {
      try SigV4.parseAuthorization(
        "AWS4-HMAC-SHA256 Credential=AKID/20261204/us-east-1/ec2-instance-connect/aws4_request,\u{301}SignedHeaders=host, Signature=\(signature)"
      )
    }
    #expect(throws: SigV4Error.self) {
      try SigV4.parseAuthorization(
        "AWS4-HMAC-SHA256 Credential=AKID/\u{0662}\u{0660}\u{0662}\u{0666}\u{0661}\u{0662}\u{0660}\u{0664}/us-east-1/ec2-instance-connect/aws4_request, SignedHeaders=host, Signature=\(signature)"
      )
    }
    #expect(throws: SigV4Error.self) {
      try SigV4.parseAuthorization(
        "AWS4-HMAC-SHA256 Credential=AKID/20261204/us-east-1/ec2-instance-connect/aws4_request, SignedHeaders=Host, Signature=\(signature)"
      )
    }
  }
}
