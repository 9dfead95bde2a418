import Crypto
import Foundation
import Synchronization

/// An HTTP request to sign or verify: raw path and query as sent, headers in order (duplicates allowed).
public struct SigV4Request: Sendable {
  public var method: String
  public var path: String
  public var query: String
  public var headers: [(name: String, value: String)]
  public var body: [UInt8]

  public init(
    method: String, path: String, query: String = "", headers: [(name: String, value: String)], body: [UInt8]
  ) {
    self.method = method
    self.path = path
    self.query = query
    self.headers = headers
    self.body = body
  }

  public func header(_ name: String) -> String? {
    headers.first { $0.name.lowercased() == name.lowercased() }?.value
  }
}

/// AWS access keys. `description` never shows the secret or the session token.
public struct AWSCredentials: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
  public var accessKeyID: String
  public var secretAccessKey: String
  public var sessionToken: String?
  /// Where the credentials came from, e.g. "environment", "profile default", "instance role".
  public var source: String
  /// When temporary credentials stop working; nil for long-term keys.
  public var expiration: Date?

  public init(
    accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, source: String = "explicit",
    expiration: Date? = nil
  ) {
    self.accessKeyID = accessKeyID
    self.secretAccessKey = secretAccessKey
    self.sessionToken = sessionToken
    self.source = source
    self.expiration = expiration
  }

  public var description: String { "AWSCredentials(\(accessKeyID), secret: <redacted>, from \(source))" }
  public var debugDescription: String { description }
}

/// Signature Version 4, header-based, as AWS documents it; both the signing and the verifying side.
public enum SigV4 {
  public static let algorithm = "AWS4-HMAC-SHA256"

  /// `YYYYMMDD'T'HHMMSS'Z'` in UTC.
  public static func amzDate(_ date: Date) -> String {
    var time = time_t(date.timeIntervalSince1970.rounded(.down))
    var parts = tm()
    gmtime_r(&time, &parts)
    return String(
      format: "%04d%02d%02dT%02d%02d%02dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
      Int(parts.tm_mday),
      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
  }

  static func parseAmzDate(_ text: String) -> Date? {
    let bytes = Array(text.utf8)
    guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
    func number(_ range: Range<Int>) -> Int? {
      var value = 0
      for b in bytes[range] {
        guard b >= 0x30, b <= 0x39 else { return nil }
        value = value * 10 + Int(b - 0x30)
      }
      return value
    }
    guard let y = number(0..<4), let mo = number(4..<6), let d = number(6..<8), let h = number(9..<11),
      let mi = number(11..<13), let s = number(13..<15), (1...12).contains(mo), (1...31).contains(d), h < 24,
      mi < 60, s < 61
    else { return nil }
    var parts = tm()
    parts.tm_year = Int32(y - 1900)
    parts.tm_mon = Int32(mo - 1)
    parts.tm_mday = Int32(d)
    parts.tm_hour = Int32(h)
    parts.tm_min = Int32(mi)
    parts.tm_sec = Int32(s)
    return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
  }

  // MARK: - Canonical request

  static let unreserved: Set<UInt8> = Set(
    Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8))
  static let hexDigits = Array("0123456789ABCDEF".utf8)

  /// RFC 3986 percent-encoding of everything but unreserved characters.
  public static func uriEncode(_ bytes: some Sequence<UInt8>) -> String {
    var out: [UInt8] = []
    for b in bytes {
      if unreserved.contains(b) {
        out.append(b)
      } else {
        out.append(UInt8(ascii: "%"))
        out.append(hexDigits[Int(b >> 4)])
        out.append(hexDigits[Int(b & 0xF)])
      }
    }
    return String(decoding: out, as: UTF8.self)
  }

  static func percentDecode(_ text: Substring) -> [UInt8] {
    var out: [UInt8] = []
    let bytes = Array(text.utf8)
    var i = 0
    while i < bytes.count {
      if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count, let hi = hexValue(bytes[i + 1]),
        let lo = hexValue(bytes[i + 2])
      {
        out.append(hi << 4 | lo)
        i += 3
      } else {
        out.append(bytes[i])
        i += 1
      }
    }
    return out
  }

  static func hexValue(_ b: UInt8) -> UInt8? {
    switch b {
    case 0x30...0x39: b - 0x30
    case 0x41...0x46: b - 0x41 + 10
    case 0x61...0x66: b - 0x61 + 10
    default: nil
    }
  }

  /// The canonical URI: dot segments removed, repeated slashes collapsed, each segment encoded once.
  static func canonicalURI(_ path: String) -> String {
    let raw = path.isEmpty ? "/" : path
    var segments: [Substring] = []
    for segment in raw.split(separator: "/", omittingEmptySubsequences: true) {
      if segment == "." { continue }
      if segment == ".." {
        if !segments.isEmpty { segments.removeLast() }
        continue
      }
      segments.append(segment)
    }
    var result = "/" + segments.map { uriEncode(percentDecode($0)) }.joined(separator: "/")
    if raw.hasSuffix("/") && !segments.isEmpty { result += "/" }
    return result
  }

  static func canonicalQuery(_ query: String) -> String {
    guard !query.isEmpty else { return "" }
    var pairs: [(String, String)] = []
    for item in query.split(separator: "&", omittingEmptySubsequences: true) {
      let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      let key = uriEncode(percentDecode(parts[0]))
      let value = parts.count > 1 ? uriEncode(percentDecode(parts[1])) : ""
      pairs.append((key, value))
    }
    pairs.sort { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
    return pairs.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
  }

  static func canonicalHeaderValue(_ value: String) -> String {
    value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(
      separator: " ")
  }

  /// The canonical request and the signed-headers list, signing `only` these headers when given
  /// (the verifier's case) or every header otherwise.
  public static func canonicalRequest(_ request: SigV4Request, signing only: [String]? = nil) -> (
    String, String
  ) {
    var grouped: [String: [String]] = [:]
    for (name, value) in request.headers {
      let key = name.lowercased()
      if let only, !only.contains(key) { continue }
      grouped[key, default: []].append(canonicalHeaderValue(value))
    }
    let names = grouped.keys.sorted()
    let headers = names.map { "\($0):\(grouped[$0]!.joined(separator: ","))\n" }.joined()
    let signed = names.joined(separator: ";")
    let payloadHash = hex(SHA256.hash(data: request.body))
    let creq = [
      request.method, canonicalURI(request.path), canonicalQuery(request.query), headers, signed, payloadHash,
    ]
    .joined(separator: "\n")
    return (creq, signed)
  }

  public static func stringToSign(canonicalRequest: String, amzDate: String, scope: String) -> String {
    [algorithm, amzDate, scope, hex(SHA256.hash(data: Array(canonicalRequest.utf8)))].joined(separator: "\n")
  }

  public static func signingKey(secret: String, date: String, region: String, service: String) -> SymmetricKey
  {
    var key = SymmetricKey(data: Array("AWS4\(secret)".utf8))
    for part in [date, region, service, "aws4_request"] {
      key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
    }
    return key
  }

  static func signature(stringToSign: String, key: SymmetricKey) -> String {
    hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
  }

  static let lowerHexDigits = Array("0123456789abcdef".utf8)

  static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
    var out = [UInt8]()
    out.reserveCapacity(64)
    for b in digest {
      out.append(lowerHexDigits[Int(b >> 4)])
      out.append(lowerHexDigits[Int(b & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// `signingKey`, remembered per secret and scope: the derivation is five HMACs, and a client
  /// signs (the broker verifies) many requests in one day's scope. Keyed by the secret's SHA-256,
  /// so the table holds no copy of a secret.
  static func cachedSigningKey(secret: String, date: String, region: String, service: String) -> SymmetricKey
  {
    let id = hex(SHA256.hash(data: Array(secret.utf8))) + "/" + date + "/" + region + "/" + service
    if let key = signingKeys.withLock({ $0[id] }) { return key }
    let key = signingKey(secret: secret, date: date, region: region, service: service)
    signingKeys.withLock { keys in
      if keys.count >= 256 { keys.removeAll() }  // bounded: principals × days seen
      keys[id] = key
    }
    return key
  }

  static let signingKeys = Mutex<[String: SymmetricKey]>([:])

  // MARK: - Signing

  /// The `Authorization` value for `request`, which must already carry `host` and `x-amz-date`.
  public static func authorization(
    for request: SigV4Request, credentials: AWSCredentials, region: String, service: String, amzDate: String
  ) -> String {
    let date = String(amzDate.prefix(8))
    let scope = "\(date)/\(region)/\(service)/aws4_request"
    let (creq, signed) = canonicalRequest(request)
    let sts = stringToSign(canonicalRequest: creq, amzDate: amzDate, scope: scope)
    let key = cachedSigningKey(
      secret: credentials.secretAccessKey, date: date, region: region, service: service)
    return
      "\(algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signed), Signature=\(signature(stringToSign: sts, key: key))"
  }

  /// Adds `X-Amz-Date`, `X-Amz-Security-Token` (for session credentials) and `Authorization`.
  /// Sign only the headers that will be sent as they are; `host` must be present.
  public static func sign(
    _ request: inout SigV4Request, credentials: AWSCredentials, region: String, service: String, date: Date
  ) {
    let amz = amzDate(date)
    request.headers.removeAll {
      ["x-amz-date", "authorization", "x-amz-security-token"].contains($0.name.lowercased())
    }
    request.headers.append(("X-Amz-Date", amz))
    if let token = credentials.sessionToken { request.headers.append(("X-Amz-Security-Token", token)) }
    let value = authorization(
      for: request, credentials: credentials, region: region, service: service, amzDate: amz)
    request.headers.append(("Authorization", value))
  }

  // MARK: - Verifying

  /// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
  public struct ParsedAuthorization: Sendable, Equatable {
    public var accessKeyID: String
    public var date: String
    public var region: String
    public var service: String
    public var signedHeaders: [String]
    public var signature: String
  }

  /// Parses an `Authorization` header strictly, on its UTF-8 bytes: a `,`, `/` or `=` with a
  /// combining mark glued to it is one Swift `Character` but still a separator to every other
  /// SigV4 implementation, so no `Character` comparison decides anything here.
  public static func parseAuthorization(_ header: String) throws(SigV4Error) -> ParsedAuthorization {
    let bytes = Array(header.utf8)
    guard bytes.count <= 2048 else {
      throw .malformed("the Authorization header is longer than 2048 bytes")
    }
    let prefix = Array((algorithm + " ").utf8)
    guard bytes.starts(with: prefix) else {
      throw .malformed("the Authorization header does not start with '\(algorithm) '")
    }
    func text(_ slice: ArraySlice<UInt8>) -> String { String(decoding: slice, as: UTF8.self) }
    /// At most 40 bytes of `slice`, printable ASCII only (anything else shown as '?').
    func excerpt(_ slice: ArraySlice<UInt8>) -> String {
      String(
        decoding: slice.prefix(40).map { (0x20..<0x7F).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }
    func trimmed(_ slice: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
      var part = slice
      while let first = part.first, first == 0x20 || first == 0x09 { part = part.dropFirst() }
      while let last = part.last, last == 0x20 || last == 0x09 { part = part.dropLast() }
      return part
    }
    var fields: [String: String] = [:]
    for raw in bytes[prefix.count...].split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
      let item = trimmed(raw)
      guard let eq = item.firstIndex(of: UInt8(ascii: "=")) else {
        throw .malformed("'\(excerpt(item))' is not KEY=VALUE")
      }
      let key = text(item[..<eq])
      guard fields[key] == nil else { throw .malformed("'\(excerpt(item[..<eq]))' appears twice") }
      fields[key] = text(item[(eq + 1)...])
    }
    guard let credential = fields["Credential"], let signedHeaders = fields["SignedHeaders"],
      let signature = fields["Signature"], fields.count == 3
    else {
      throw .malformed("expected exactly Credential, SignedHeaders and Signature")
    }
    func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
    let scope = Array(credential.utf8).split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
    guard scope.count == 5, text(scope[4]) == "aws4_request", !scope[0].isEmpty, scope[1].count == 8,
      scope[1].allSatisfy(isDigit), !scope[2].isEmpty, !scope[3].isEmpty
    else {
      throw .malformed("the credential scope must be KEY/YYYYMMDD/REGION/SERVICE/aws4_request")
    }
    let headerNames = Array(signedHeaders.utf8).split(
      separator: UInt8(ascii: ";"), omittingEmptySubsequences: false)
    let headers = headerNames.map(text)
    // Header names are ASCII tokens: printable, no upper case, no separators.
    guard !headerNames.isEmpty,
      headerNames.allSatisfy({
        !$0.isEmpty
          && $0.allSatisfy { (0x21..<0x7F).contains($0) && !(0x41...0x5A).contains($0) && $0 != 0x3B }
      }),
      headers == headers.sorted()
    else {
      throw .malformed("SignedHeaders must be lowercase names in sorted order, separated by ';'")
    }
    guard signature.utf8.count == 64,
      signature.utf8.allSatisfy({ isDigit($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) })
    else {
      throw .malformed("the signature must be 64 lowercase hex digits")
    }
    return ParsedAuthorization(
      accessKeyID: text(scope[0]), date: text(scope[1]), region: text(scope[2]), service: text(scope[3]),
      signedHeaders: headers, signature: signature)
  }

  /// What a verified request proved.
  public struct Verified: Sendable, Equatable {
    public var accessKeyID: String
    public var region: String
    public var service: String
    /// The verified signature, 64 lowercase hex digits: what the secret signed, whatever the
    /// spelling of the `Authorization` header (field order, spaces). Replay caches key on it.
    public var signature: String
    /// When the request says it was signed (`X-Amz-Date`, whole seconds).
    public var signedAt: Date
  }

  /// Checks a request's signature.
  /// - Parameters:
  ///   - secretFor: the secret for an access key id, nil for an unknown key.
  ///   - maxSkew: how far `x-amz-date` may be from `now`.
  /// - Throws: `SigV4Error` saying what is wrong.
  public static func verify(
    request: SigV4Request, secretFor: (String) -> String?, now: Date, maxSkew: TimeInterval = 300
  ) throws(SigV4Error) -> Verified {
    guard let header = request.header("authorization") else { throw .missing }
    let parsed = try parseAuthorization(header)
    guard parsed.signedHeaders.contains("host") else { throw .malformed("the host header must be signed") }
    guard parsed.signedHeaders.contains("x-amz-date") else {
      throw .malformed("the x-amz-date header must be signed")
    }
    for name in parsed.signedHeaders where request.header(name) == nil {
      throw .malformed("the signed header '\(name)' is not in the request")
    }
    guard let amz = request.header("x-amz-date"), let date = parseAmzDate(amz) else {
      throw .malformed("X-Amz-Date must look like 20150830T123600Z")
    }
    guard amz.hasPrefix(parsed.date) else {
      throw .malformed("the credential scope date \(parsed.date) does not match X-Amz-Date \(amz)")
    }
    guard abs(date.timeIntervalSince(now)) <= maxSkew else {
      throw .stale(requestTime: amz, serverTime: amzDate(now))
    }
    guard let secret = secretFor(parsed.accessKeyID) else { throw .unknownKey(parsed.accessKeyID) }
    let (creq, _) = canonicalRequest(request, signing: parsed.signedHeaders)
    let scope = "\(parsed.date)/\(parsed.region)/\(parsed.service)/aws4_request"
    let sts = stringToSign(canonicalRequest: creq, amzDate: amz, scope: scope)
    let expected = signature(
      stringToSign: sts,
      key: cachedSigningKey(secret: secret, date: parsed.date, region: parsed.region, service: parsed.service)
    )
    guard constantTimeEqual(Array(expected.utf8), Array(parsed.signature.utf8)) else {
      throw .signatureMismatch
    }
    return Verified(
      accessKeyID: parsed.accessKeyID, region: parsed.region, service: parsed.service,
      signature: parsed.signature, signedAt: date)
  }

  static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in 0..<a.count { difference |= a[i] ^ b[i] }
    return difference == 0
  }
}

/// Why a request's signature was not accepted.
public enum SigV4Error: Error, Sendable, Equatable, CustomStringConvertible {
  case missing
  case malformed(String)
  case stale(requestTime: String, serverTime: String)
  case unknownKey(String)
  case signatureMismatch

  public var description: String {
    switch self {
    case .missing: "the request is not signed (no Authorization header)"
    case .malformed(let what): "the request's signature is malformed: \(what)"
    case .stale(let requestTime, let serverTime):
      "the request was signed at \(requestTime) but the server's time is \(serverTime), more than 5 minutes apart; check the clocks"
    case .unknownKey(let key): "the access key id \(key.prefix(32)) is not known"
    case .signatureMismatch:
      "the request signature does not match the signature computed from the secret access key; check the secret"
    }
  }
}
