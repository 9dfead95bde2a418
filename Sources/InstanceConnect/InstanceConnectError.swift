import Foundation

/// Everything that can go wrong pushing a key, as full sentences naming the value at fault.
public enum InstanceConnectError: Error, Sendable, Equatable, CustomStringConvertible {
  /// A request field broke the service model's rules; nothing was sent.
  case invalidParameter(field: String, value: String, expected: String)
  /// The service answered with an error.
  case service(ServiceError)
  /// The request never got an answer (connection refused, timeout, TLS…).
  case transport(endpoint: String, message: String)
  case noCredentials(tried: [String])
  case unknownProfile(String, files: [String])
  case noRegion

  public var description: String {
    switch self {
    case .invalidParameter(let field, let value, let expected):
      "\(field) '\(value.prefix(64))' is not valid; expected \(expected)."
    case .service(let error): error.description
    case .transport(let endpoint, let message): "Could not reach \(endpoint): \(message)."
    case .noCredentials(let tried):
      "No AWS credentials were found (tried \(tried.joined(separator: ", "))); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or pass --profile."
    case .unknownProfile(let name, let files):
      "The AWS profile '\(name)' is not defined in \(files.joined(separator: " or "))."
    case .noRegion:
      "No AWS region is set; pass --region, set AWS_REGION, or set 'region' in the profile (or pass --endpoint)."
    }
  }

  /// Whether a retry may succeed: throttling, server errors and lost connections.
  public var isRetryable: Bool {
    switch self {
    case .service(let error): error.isRetryable
    case .transport: true
    default: false
    }
  }
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

  /// Decodes an error answer: JSON 1.1 (`__type`, `message`/`Message`), the `x-amzn-ErrorType`
  /// header, or an XML `<Error><Code>…</Code><Message>…</Message>` body.
  public static func decode(status: Int, headers: [String: String], body: [UInt8], endpoint: String)
    -> ServiceError
  {
    var code: String?
    var message = ""
    if let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] {
      code = (object["__type"] as? String) ?? (object["code"] as? String) ?? (object["Code"] as? String)
      message = (object["message"] as? String) ?? (object["Message"] as? String) ?? ""
    } else {
      let text = String(decoding: body.prefix(8192), as: UTF8.self)
      code = xmlElement("Code", in: text)
      message = xmlElement("Message", in: text) ?? ""
    }
    if code == nil, let header = headers["x-amzn-errortype"] { code = header }
    var name = code ?? "HTTP\(status)"
    if let hash = name.lastIndex(of: "#") { name = String(name[name.index(after: hash)...]) }
    if let colon = name.firstIndex(of: ":") { name = String(name[..<colon]) }
    return ServiceError(
      code: name, message: message, status: status,
      requestID: headers["x-amzn-requestid"] ?? headers["x-amz-request-id"]
        ?? xmlElement("RequestId", in: String(decoding: body.prefix(8192), as: UTF8.self)),
      endpoint: endpoint)
  }

  static func xmlElement(_ name: String, in text: String) -> String? {
    guard let start = text.range(of: "<\(name)>"),
      let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex)
    else { return nil }
    return String(text[start.upperBound..<end.lowerBound])
  }
}
