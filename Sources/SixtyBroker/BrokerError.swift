/// An error the broker answers with, in the AWS JSON 1.1 shape (`__type`, `message`).
///
/// Names and statuses follow EC2 Instance Connect and AWS's common errors, so the AWS CLI and
/// SDKs report them as they would for AWS itself. Internal failures never leak details.
public struct BrokerError: Error, Sendable, Equatable {
  public var type: String
  public var status: Int
  public var message: String
  /// A short reason for metrics and the audit log.
  public var reason: String

  public init(_ type: String, status: Int, _ message: String, reason: String) {
    self.type = type
    self.status = status
    self.message = message
    self.reason = reason
  }

  public static func invalidArgs(_ message: String, reason: String = "invalid_args") -> BrokerError {
    BrokerError("InvalidArgsException", status: 400, message, reason: reason)
  }

  public static func auth(_ message: String, reason: String = "not_authorized") -> BrokerError {
    BrokerError("AuthException", status: 403, message, reason: reason)
  }

  public static func notFound(_ instance: String) -> BrokerError {
    BrokerError(
      "EC2InstanceNotFoundException", status: 400, "Instance \(instance) is not registered with this broker.",
      reason: "instance_not_found")
  }

  public static func throttled() -> BrokerError {
    BrokerError(
      "ThrottlingException", status: 400,
      "Rate exceeded: too many key pushes for this principal; retry with backoff.",
      reason: "throttled")
  }

  public static func badSignature(_ message: String) -> BrokerError {
    BrokerError("InvalidSignatureException", status: 403, message, reason: "bad_signature")
  }

  public static func unknownKey() -> BrokerError {
    BrokerError(
      "UnrecognizedClientException", status: 403, "The security token included in the request is invalid.",
      reason: "unknown_access_key")
  }

  public static func missingAuthentication() -> BrokerError {
    BrokerError(
      "MissingAuthenticationTokenException", status: 403,
      "Missing Authentication Token: the request is not signed.",
      reason: "unsigned")
  }

  public static func internalError() -> BrokerError {
    BrokerError(
      "ServiceException", status: 500, "The broker could not complete the request; try again.",
      reason: "internal")
  }
}
