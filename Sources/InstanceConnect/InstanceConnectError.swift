import Foundation
import SixtyCore

/// Everything that can go wrong pushing a key, as full sentences naming the value at fault.
public enum InstanceConnectError: Error, Sendable, Equatable, CustomStringConvertible {
  /// A request field broke the service model's rules; nothing was sent.
  case invalidParameter(field: String, value: String, expected: String)
  /// The service answered with an error.
  case service(ServiceError)
  /// The request never got an answer (connection refused, timeout, TLS…).
  case transport(endpoint: String, message: String)
  /// Every one of several endpoints failed with a reason to try the next (a connection error, a
  /// timeout, an HTTP 5xx answer): each endpoint's last failure, in the configured order.
  case allEndpointsFailed([EndpointFailure])
  case noCredentials(tried: [String])
  case unknownProfile(String, files: [String])
  case noRegion
  /// A profile, a token file, a process or a cache could not give credentials: the sentence says
  /// which and why.
  case credentials(String)
  /// STS, the SSO portal or a credentials endpoint refused to give credentials; `context` names
  /// the call and the profile.
  case credentialService(context: String, ServiceError)

  public var description: String {
    switch self {
    case .invalidParameter(let field, let value, let expected):
      "\(field) '\(value.prefix(64))' is not valid; expected \(expected)."
    case .service(let error): error.description
    case .transport(let endpoint, let message): "Could not reach \(endpoint): \(message)."
    case .allEndpointsFailed(let failures):
      "None of the \(failures.count) Instance Connect endpoints answered (each was tried in order, the next on a connection error, a timeout or an HTTP 5xx answer): "
        + failures.map { "\($0.endpoint): \($0.reason)" }.joined(separator: "; ") + "."
    case .noCredentials(let tried):
      "No AWS credentials were found (tried \(tried.joined(separator: ", "))); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or pass --profile."
    case .unknownProfile(let name, let files):
      "The AWS profile \(SafeText.quoted(name, limit: 64)) is not in \(files.joined(separator: " or "))."
    case .credentials(let message): message
    case .credentialService(let context, let error): "\(context) was refused: \(error.answer)."
    case .noRegion:
      "No AWS region is set; pass --region, set AWS_REGION, or set 'region' in the profile (or pass --endpoint)."
    }
  }

  /// Whether a retry may succeed: throttling, server errors and lost connections.
  public var isRetryable: Bool {
    switch self {
    case .service(let error): error.isRetryable
    case .transport, .allEndpointsFailed: true
    default: false
    }
  }

  /// Whether the next of several endpoints may do better: the request got no answer (connection
  /// refused or lost, a timeout, TLS), or the answer was a server error (HTTP 5xx). A 4xx answer
  /// (throttling, a refused signature, access denied, an unknown instance) is about the request,
  /// which every replica of a shared broker, or AWS, answers alike.
  public var isFailoverReason: Bool {
    switch self {
    case .transport: true
    case .service(let error): error.status >= 500
    default: false
    }
  }

  /// What went wrong at one endpoint, briefly, for a failover report.
  public var failoverReason: String {
    switch self {
    case .transport(_, let message): message
    case .service(let error):
      "HTTP \(error.status) (\(error.code))\(error.message.isEmpty ? "" : ": \(error.message)")"
    default: description
    }
  }
}

/// One endpoint that failed with a reason to try the next one.
public struct EndpointFailure: Sendable, Equatable, CustomStringConvertible {
  /// The endpoint, as errors name it (no trailing slash).
  public var endpoint: String
  /// Why, briefly: "the connection was refused", "HTTP 503 (ServiceUnavailable): …".
  public var reason: String

  public init(endpoint: String, reason: String) {
    self.endpoint = endpoint
    self.reason = reason
  }

  public var description: String { "\(endpoint) failed (\(reason))" }
}

/// An error answer from EC2 Instance Connect, the broker, or any AWS-compatible endpoint.
public struct ServiceError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The error code, e.g. `ThrottlingException` (any `namespace#` prefix removed).
  public var code: String
  public var message: String
  public var status: Int
  public var requestID: String?
  public var endpoint: String

  public init(code: String, message: String, status: Int, requestID: String?, endpoint: String) {
    self.code = code
    self.message = message
    self.status = status
    self.requestID = requestID
    self.endpoint = endpoint
  }

  public var isRetryable: Bool {
    status >= 500
      || [
        "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
        "ServiceException", "ServiceUnavailable",
      ].contains(code)
  }

  public var kind: Kind { Kind(code: code) }

  /// The families of errors a caller handles differently.
  public enum Kind: Sendable, Equatable {
    case signature, unknownAccessKey, expiredCredentials, notAuthorized, invalidArguments, instanceNotFound
    case instanceState, instanceUnavailable, instanceType, throttling, serialConsole, service, other

    init(code: String) {
      switch code {
      case "InvalidSignatureException", "SignatureDoesNotMatch", "IncompleteSignature",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException", "MissingAuthenticationToken":
        self = .signature
      case "UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId":
        self = .unknownAccessKey
      case "ExpiredTokenException", "ExpiredToken", "RequestExpired": self = .expiredCredentials
      case "AuthException", "AccessDeniedException", "AccessDenied", "UnauthorizedOperation":
        self = .notAuthorized
      case "InvalidArgsException", "ValidationException", "InvalidParameterValue",
        "UnknownOperationException":
        self = .invalidArguments
      case "EC2InstanceNotFoundException": self = .instanceNotFound
      case "EC2InstanceStateInvalidException": self = .instanceState
      case "EC2InstanceUnavailableException": self = .instanceUnavailable
      case "EC2InstanceTypeInvalidException": self = .instanceType
      case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded":
        self = .throttling
      case "SerialConsoleAccessDisabledException", "SerialConsoleSessionLimitExceededException",
        "SerialConsoleSessionUnavailableException", "SerialConsoleSessionUnsupportedException":
        self = .serialConsole
      case "ServiceException", "InternalFailure", "ServiceUnavailable": self = .service
      default: self = .other
      }
    }
  }

  /// What the service said, as the AWS CLI shows it: `AuthFailure: AWS was not able to validate
  /// the provided access credentials (HTTP 401 from ENDPOINT, request ID)`.
  public var answer: String {
    var trimmed = message
    while trimmed.hasSuffix(".") { trimmed.removeLast() }
    let id = requestID.map { ", request \($0)" } ?? ""
    return "\(code)\(trimmed.isEmpty ? "" : ": \(trimmed)") (HTTP \(status) from \(endpoint)\(id))"
  }

  public var description: String {
    var trimmed = message.trimmingCharacters(in: .whitespacesAndNewlines)
    while trimmed.hasSuffix(".") { trimmed.removeLast() }
    let detail = trimmed.isEmpty ? "" : ": \(trimmed)"
    let id = requestID.map { " (request \($0))" } ?? ""
    switch kind {
    case .signature:
      return
        "The request signature was rejected by \(endpoint) (\(code))\(detail); check the secret access key and the clock\(id)."
    case .unknownAccessKey:
      return
        "The access key id was not recognised by \(endpoint) (\(code))\(detail); check AWS_ACCESS_KEY_ID or the profile\(id)."
    case .expiredCredentials:
      return "The credentials have expired (\(code))\(detail); refresh them\(id)."
    case .notAuthorized:
      return "Not authorized to push this key (\(code))\(detail)\(id)."
    case .invalidArguments:
      return "\(endpoint) rejected the request's arguments (\(code))\(detail)\(id)."
    case .instanceNotFound:
      return "The instance was not found (\(code))\(detail); check the instance id and region\(id)."
    case .instanceState:
      return "The instance is not in a state that accepts keys (\(code))\(detail); it must be running\(id)."
    case .instanceUnavailable:
      return "The instance is temporarily unavailable (\(code))\(detail)\(id)."
    case .instanceType:
      return "The instance type does not support EC2 Instance Connect (\(code))\(detail)\(id)."
    case .throttling:
      return "\(endpoint) throttled the key pushes (\(code))\(detail); retries were exhausted\(id)."
    case .serialConsole:
      return "Serial console access was refused (\(code))\(detail)\(id)."
    case .service:
      return "\(endpoint) failed to handle the request (\(code), HTTP \(status))\(detail)\(id)."
    case .other:
      return "\(endpoint) answered HTTP \(status) (\(code))\(detail)\(id)."
    }
  }

  /// The most of an error body that is parsed: AWS's error answers are a few hundred bytes.
  static let maxParsedBody = 16 * 1024

  /// Decodes an error answer: JSON 1.1 (`__type`, `message`/`Message`), the `x-amzn-ErrorType`
  /// header, or an XML body: EC2's `<Response><Errors><Error><Code>…</Code><Message>…`, the Query
  /// APIs' (STS) `<ErrorResponse><Error>…`. The body comes from the network: only its first
  /// 16 KiB are read, the code and request id keep only the characters AWS uses in them, and the
  /// message loses control characters and bidirectional overrides and is cut to 400 characters.
  public static func decode(status: Int, headers: [String: String], body: [UInt8], endpoint: String)
    -> ServiceError
  {
    var code: String?
    var message = ""
    let head = Array(body.prefix(maxParsedBody))
    let text = String(decoding: head, as: UTF8.self)
    if head.first(where: { !isSpace($0) }) == UInt8(ascii: "{"),
      let object = (try? JSONSerialization.jsonObject(with: Data(head))) as? [String: Any]
    {
      code = (object["__type"] as? String) ?? (object["code"] as? String) ?? (object["Code"] as? String)
      message = (object["message"] as? String) ?? (object["Message"] as? String) ?? ""
    } else {
      code = xmlElement("Code", in: text)
      message = xmlElement("Message", in: text) ?? ""
    }
    if code == nil, let header = headers["x-amzn-errortype"] { code = header }
    var name = code ?? "HTTP\(status)"
    if let hash = name.lastIndex(of: "#") { name = String(name[name.index(after: hash)...]) }
    if let colon = name.firstIndex(of: ":") { name = String(name[..<colon]) }
    let requestID =
      headers["x-amzn-requestid"] ?? headers["x-amz-request-id"] ?? xmlElement("RequestId", in: text)
      ?? xmlElement("RequestID", in: text)
    return ServiceError(
      code: token(name) ?? "HTTP\(status)", message: plain(message), status: status,
      requestID: requestID.flatMap(token), endpoint: endpoint)
  }

  static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 }

  /// An error code or request id: letters, digits, `.`, `_`, `-`, up to 128; nil when anything else
  /// is in it.
  static func token(_ text: String) -> String? {
    let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !trimmed.isEmpty, trimmed.utf8.count <= 128,
      trimmed.utf8.allSatisfy({
        SafeText.isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_")
          || $0 == UInt8(ascii: "-")
      })
    else { return nil }
    return trimmed
  }

  /// A message from the network made safe to print: control characters, bidirectional marks and
  /// line separators become spaces, runs of spaces one space, and past `limit` Unicode scalars
  /// the rest is cut with an ellipsis.
  public static func plain(_ text: String, limit: Int = 400) -> String {
    var output = String.UnicodeScalarView()
    var count = 0
    var lastWasSpace = true
    for scalar in text.unicodeScalars {
      let space = SafeText.needsEscape(scalar) || scalar == " " || scalar.properties.isWhitespace
      if space {
        if lastWasSpace { continue }
        output.append(" ")
        lastWasSpace = true
      } else {
        output.append(scalar)
        lastWasSpace = false
      }
      count += 1
      if count >= limit {
        output.append("…")
        break
      }
    }
    var result = String(output)
    while result.hasSuffix(" ") { result.removeLast() }
    return result
  }

  /// The text of the first `<name>` element, entities decoded.
  static func xmlElement(_ name: String, in text: String) -> String? {
    guard let start = text.range(of: "<\(name)>"),
      let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex)
    else { return nil }
    return xmlUnescape(String(text[start.upperBound..<end.lowerBound]))
  }

  /// The five predefined XML entities and numeric references (`&#39;`, `&#x27;`).
  static func xmlUnescape(_ text: String) -> String {
    guard text.contains("&") else { return text }
    var output = ""
    var rest = Substring(text)
    while let amp = rest.firstIndex(of: "&") {
      output += rest[..<amp]
      let after = rest[amp...]
      guard let semi = after.prefix(12).firstIndex(of: ";") else {
        output += "&"
        rest = rest[rest.index(after: amp)...]
        continue
      }
      let entity = after[after.index(after: amp)..<semi]
      var replacement: String?
      switch entity {
      case "amp": replacement = "&"
      case "lt": replacement = "<"
      case "gt": replacement = ">"
      case "quot": replacement = "\""
      case "apos": replacement = "'"
      default:
        if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
          replacement = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String($0) }
        } else if entity.hasPrefix("#") {
          replacement = UInt32(entity.dropFirst()).flatMap(Unicode.Scalar.init).map { String($0) }
        }
      }
      if let replacement {
        output += replacement
        rest = rest[rest.index(after: semi)...]
      } else {
        output += "&"
        rest = rest[rest.index(after: amp)...]
      }
    }
    return output + rest
  }
}
