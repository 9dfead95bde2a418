import Foundation
import InstanceConnect
import SixtyKeys
import UnixSignals

/// `sixty push`: one public key to one instance, through Instance Connect or a broker.
public struct PushRequest: Sendable {
  /// Which key: a public key file, or a new pair of this type whose private half is kept.
  public enum Key: Sendable {
    case file(String)
    case generate(KeyType)
  }
  public var instanceID: String
  /// The OS user (not needed for the serial console).
  public var osUser: String?
  public var key: Key
  public var zone: String?
  /// SendSerialConsoleSSHPublicKey instead of SendSSHPublicKey.
  public var serialConsole = false
  public var connect = ConnectSettings()

  public init(instanceID: String, osUser: String?, key: Key) {
    self.instanceID = instanceID
    self.osUser = osUser
    self.key = key
  }
}

/// What a push did.
public struct PushResult: Sendable {
  public var requestID: String
  /// The kept private key of a generated pair, and when the pushed key stops being accepted.
  public var generated: (privateKeyPath: String, expires: Date)?
  /// The endpoints that failed before one took the push (nil when the first answered).
  public var failover: SendSSHPublicKeyResponse.Failover?
}

extension SendSSHPublicKeyResponse.Failover {
  /// `sixty: http://b1:8600 failed (the connection was refused); pushed through http://b2:8600`,
  /// for standard error.
  public var text: String {
    let failed = failures.map { "\($0.endpoint) failed (\($0.reason))" }.joined(separator: ", ")
    return "sixty: \(failed); pushed through \(servedBy)"
  }
}

public enum KeyPush {
  /// Pushes the key; a generated pair's directory is kept for the caller only when the push
  /// succeeded.
  public static func perform(_ request: PushRequest) async throws(RunFailure) -> PushResult {
    try request.connect.checkProfile()
    var keyDirectory: EphemeralKeyDirectory?
    let key: String
    switch request.key {
    case .file(let path):
      guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw RunFailure("cannot read the public key file '\(path)'.", status: .badInput)
      }
      do {
        key = try OpenSSHPublicKey.parseStrict(text.trimmingCharacters(in: .newlines)).authorizedKeysLine
      } catch {
        throw RunFailure("\(path): \(error)", status: .badInput)
      }
    case .generate(let type):
      do {
        let pair = try SSHKeyPair.generate(type, comment: "sixty-push")
        keyDirectory = try EphemeralKeyDirectory(
          key: pair, parent: ProcessInfo.processInfo.environment["SIXTY_KEY_DIR"])
        key = pair.authorizedKey
      } catch {
        throw RunFailure("cannot make the key pair: \(error)", status: .badInput)
      }
    }
    let client = try await request.connect.client()
    do {
      let response: SendSSHPublicKeyResponse
      if request.serialConsole {
        response = try await client.sendSerialConsoleSSHPublicKey(
          instanceID: request.instanceID, publicKey: key)
      } else {
        response = try await client.sendSSHPublicKey(
          SendSSHPublicKeyRequest(
            instanceID: request.instanceID, osUser: request.osUser ?? "", publicKey: key,
            availabilityZone: request.zone))
      }
      var result = PushResult(requestID: response.requestID)
      result.failover = response.failover
      if let keyDirectory {
        result.generated = (keyDirectory.privateKeyPath, Date().addingTimeInterval(60))
        keyDirectory.keep()
      }
      return result
    } catch {
      throw RunFailure(error.description, status: error.exitStatus)
    }
  }
}

/// SIGINT and SIGTERM for the commands that have no graceful shutdown of their own (`push`,
/// `ssh`): every key directory is wiped, then the process exits with 130 or 143.
public enum KeyWipeOnSignal {
  public static func install() async {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
    Task.detached {
      for await received in signals {
        KeyWipeRegistry.shared.wipeAll()
        exit(received == .sigterm ? 143 : 130)
      }
    }
  }
}
