import Foundation
import InstanceConnect
import SixtyKeys

extension Broker {
  /// Verifies the request's SigV4 signature against the configured principals and returns the
  /// signer with what the signature proved. Errors carry the names and statuses AWS uses for the
  /// same faults.
  func authenticate(_ request: BrokerRequest, now: Date) throws(BrokerError) -> (
    BrokerConfig.Principal, SigV4.Verified
  ) {
    let signed = SigV4Request(
      method: request.method, path: request.path, query: request.query, headers: request.headers,
      body: request.body)
    let verified: SigV4.Verified
    do {
      verified = try SigV4.verify(
        request: signed, secretFor: { config.principal(accessKeyID: $0)?.secret }, now: now,
        maxSkew: config.maxClockSkew.seconds)
    } catch {
      switch error {
      case .missing: throw .missingAuthentication()
      case .malformed(let what):
        throw BrokerError(
          "IncompleteSignatureException", status: 400,
          "The request signature is malformed: \(HostileText.excerpt(what, limit: 160)).",
          reason: "malformed_signature")
      case .stale(let requestTime, let serverTime):
        throw BrokerError(
          "InvalidSignatureException", status: 403,
          "Signature expired: \(requestTime) is more than \(Int(config.maxClockSkew.seconds)) seconds away from the broker's time \(serverTime); check the clocks.",
          reason: "clock_skew")
      case .unknownKey: throw .unknownKey()
      case .signatureMismatch:
        throw .badSignature(
          "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
        )
      }
    }
    guard let principal = config.principal(accessKeyID: verified.accessKeyID) else { throw .unknownKey() }
    return (principal, verified)
  }

  /// Checks the credential scope of a verified request: this service, and this broker's region
  /// (`us-east-1` when `broker.yml` names none).
  func checkScope(_ verified: SigV4.Verified) throws(BrokerError) {
    guard verified.service == "ec2-instance-connect" else {
      throw .badSignature(
        "Credential should be scoped to correct service: 'ec2-instance-connect', not '\(HostileText.excerpt(verified.service, limit: 40))'."
      )
    }
    guard verified.region == config.region else {
      throw .badSignature(
        "Credential should be scoped to a valid region: '\(config.region)', not '\(HostileText.excerpt(verified.region, limit: 40))'."
          + (config.regionIsDefault
            ? " (This broker's region is the default; set 'region' in broker.yml to change it.)" : ""))
    }
  }
}

/// Strict checks on a pushed public key before it can reach an `authorized_keys` line.
enum BrokerKeys {
  struct Accepted {
    var line: String
    var fingerprint: String
  }

  /// Exactly one `ssh-ed25519`, `ecdsa-sha2-nistp256` or `ssh-rsa` (2048+ bits) key, valid
  /// base64, matching inner type, no options, no newline or control characters; the comment is
  /// dropped.
  ///
  /// One final line terminator is allowed, as AWS allows it: `--ssh-public-key file://key.pub`
  /// sends the file with its newline. Any other newline is refused.
  static func validate(_ text: String) throws(BrokerError) -> Accepted {
    var text = Substring(text)
    if text.hasSuffix("\r\n") {
      text = text.dropLast(2)
    } else if text.hasSuffix("\n") {
      text = text.dropLast()
    }
    do {
      let key = try OpenSSHPublicKey.parseStrict(String(text))
      return Accepted(line: key.authorizedKeysLine, fingerprint: key.fingerprint)
    } catch {
      throw .invalidArgs(error.description, reason: "bad_public_key")
    }
  }
}
