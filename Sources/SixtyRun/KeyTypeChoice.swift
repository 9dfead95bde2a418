import Foundation
import InstanceConnect
import SixtyPolicy

/// The key type of the plays whose policy sets none (`push.key_type`): the fastest the endpoint
/// takes, and why, for the run's output and report.
public struct KeyTypeChoice: Sendable, Equatable {
  public var type: LoginKeyType
  public var reason: String

  public init(type: LoginKeyType, reason: String) {
    self.type = type
    self.reason = reason
  }

  /// The choice for an endpoint that said `capabilities` (nil: AWS, or an endpoint that does not
  /// say).
  public static func choose(_ capabilities: EndpointCapabilities?) -> KeyTypeChoice {
    if let capabilities, let preferred = capabilities.preferredKeyType,
      capabilities.keyTypes.contains(preferred), let type = LoginKeyType(sshName: preferred)
    {
      return KeyTypeChoice(
        type: type,
        reason:
          "the endpoint (\(capabilities.service)) prefers \(type.description): the cheapest to make and check, and ssh signs with it at once"
      )
    }
    return KeyTypeChoice(
      type: .rsa,
      reason:
        "AWS documents RSA and Ed25519 keys for Instance Connect; ssh signs with an RSA key at once (one key check per login, where Ed25519 costs two)"
    )
  }

  /// Asks the run's endpoints (`--endpoint`; none for AWS's regional endpoint) what they take.
  static func ask(_ connect: ConnectSettings) async -> EndpointCapabilities? {
    guard let urls = try? connect.endpoints(), !urls.isEmpty else { return nil }
    return await EndpointCapabilities.ask(urls, transport: URLSessionTransport(timeout: 2))
  }

  /// The login mode of plays whose policy sets none: certificates when the endpoint is a
  /// certificate authority that prefers them, pushed keys otherwise.
  public static func mode(_ capabilities: EndpointCapabilities?) -> LoginMode {
    guard let capabilities, capabilities.preferredLogin == "certificate",
      capabilities.operations.contains("SignSSHPublicKey")
    else { return .key }
    return .certificate
  }
}

extension LoginKeyType {
  /// The type whose public keys are named `name` (RSA 2048 for `ssh-rsa`).
  init?(sshName name: String) {
    switch name {
    case "ecdsa-sha2-nistp256": self = .ecdsa
    case "ssh-ed25519": self = .ed25519
    case "ssh-rsa": self = .rsa
    default: return nil
    }
  }
}
