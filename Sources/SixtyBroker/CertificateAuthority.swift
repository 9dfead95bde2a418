import Foundation
import SixtyAgentCore
import SixtyKeys
import Synchronization

/// The broker as an SSH certificate authority (`certificates:` in broker.yml): it signs
/// 60-second OpenSSH user certificates (`SignSSHPublicKey`) that hosts check on their own with
/// `TrustedUserCAKeys` and `AuthorizedPrincipalsFile`, with no call to the broker per login.
///
/// - The signing key is `ca_key_file` (an OpenSSH private key, Ed25519 or ECDSA P-256; created,
///   Ed25519, 0600, when missing). `previous_ca_key_files` lists the keys of earlier CAs (public
///   or private key files): they sign nothing, and `sixty broker ca-public-key` prints them after
///   the current one, so hosts trust both while a rotation rolls out.
/// - A certificate's principal binds it to one host and user (`user@instance-id`, see
///   `principal(user:instance:)`); its `source-address` critical option is the host's
///   `allowed_sources`; its key id is the audit request id and its serial the audit record's
///   sequence number, so sshd's log line names the audit record.
/// - `sixty broker revoke --serial N` adds serials to `revoked_keys_file`, an OpenSSH KRL that
///   sshd's `RevokedKeys` reads (the serials themselves are kept beside it, in `FILE.serials`).
public final class CertificateAuthority: Sendable {
  public let signer: SSHKeyPair
  /// Earlier CAs' public keys, still trusted by hosts during a rotation.
  public let previous: [OpenSSHPublicKey]
  public let revokedKeysFile: String?
  /// Seconds a certificate is backdated, for hosts whose clocks run behind.
  public static let backdate: Double = 5
  /// Extensions of every certificate: a terminal for `sixty ssh` and interactive tasks.
  public static let extensions: [OpenSSHCertificateOption] = [.permitPTY]

  public struct Failure: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
  }

  public init(signer: SSHKeyPair, previous: [OpenSSHPublicKey] = [], revokedKeysFile: String? = nil) {
    self.signer = signer
    self.previous = previous
    self.revokedKeysFile = revokedKeysFile
  }

  /// Loads the CA of `settings`, creating the signing key when its file is missing.
  public static func load(_ settings: BrokerConfig.Certificates) throws(Failure) -> CertificateAuthority {
    let signer = try loadOrCreateSigner(settings.caKeyFile)
    var previous: [OpenSSHPublicKey] = []
    for path in settings.previousCAKeyFiles {
      previous.append(try publicKey(path))
    }
    return CertificateAuthority(signer: signer, previous: previous, revokedKeysFile: settings.revokedKeysFile)
  }

  static func loadOrCreateSigner(_ path: String) throws(Failure) -> SSHKeyPair {
    if let data = FileManager.default.contents(atPath: path) {
      do {
        let (pair, _) = try SSHKeyPair.parsePrivateKeyFile(Array(data))
        guard pair.type == .ed25519 || pair.type == .ecdsaP256 else {
          throw Failure(
            "The certificate authority key \(path) is a \(pair.type.sshName) key; expected an Ed25519 or ECDSA P-256 OpenSSH private key."
          )
        }
        return pair
      } catch let failure as Failure {
        throw failure
      } catch {
        throw Failure(
          "The certificate authority key \(path) is not an unencrypted OpenSSH private key: \(error); expected one made by 'ssh-keygen -t ed25519 -N \"\"' (or remove it to have one made)."
        )
      }
    }
    do {
      let pair = try SSHKeyPair.generate(.ed25519, comment: "sixty-broker-ca")
      let directory = (path as NSString).deletingLastPathComponent
      if !directory.isEmpty {
        try FileManager.default.createDirectory(
          atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      }
      try writeAtomically(pair.privateKeyFile(), to: path, mode: 0o600)
      return pair
    } catch {
      throw Failure("Cannot create the certificate authority key \(path): \(error).")
    }
  }

  /// A public key from a `.pub` line or from an OpenSSH private key file.
  static func publicKey(_ path: String) throws(Failure) -> OpenSSHPublicKey {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw Failure("Cannot read the previous certificate authority key \(path).")
    }
    let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
    if lines.count > 1, !text.hasPrefix("-----BEGIN") {
      throw Failure(
        "The previous certificate authority key \(path) holds \(lines.count) lines; expected one public key line (or a private key file)."
      )
    }
    if let key = try? OpenSSHPublicKey.parseStrict(Self.withoutComment(text)) { return key }
    if let (pair, _) = try? SSHKeyPair.parsePrivateKeyFile(Array(data)),
      let key = try? OpenSSHPublicKey.parseStrict(pair.authorizedKey)
    {
      return key
    }
    throw Failure(
      "The previous certificate authority key \(path) is neither an OpenSSH public key line nor an unencrypted OpenSSH private key."
    )
  }

  static func withoutComment(_ line: String) -> String {
    line.split(separator: " ", omittingEmptySubsequences: true).prefix(2).joined(separator: " ")
  }

  /// The lines for `TrustedUserCAKeys`: the current CA first, then the previous ones.
  public var trustedLines: [String] {
    [signer.authorizedKey + " sixty-broker-ca"]
      + previous.map { $0.authorizedKeysLine + " sixty-broker-ca-previous" }
  }

  /// The principal a certificate for `user` on `instance` carries, and the one line a host's
  /// `AuthorizedPrincipalsFile` for `user` holds: `user@instance-id`.
  public static func principal(user: String, instance: String) -> String { "\(user)@\(instance)" }

  /// Signs a certificate for `key` (an accepted public key line) valid from `now` minus the
  /// backdate to `now + ttl`.
  public func certificate(
    for keyLine: String, user: String, instance: String, sources: [CIDR], serial: UInt64, keyID: String,
    now: Date, ttl: Double
  ) throws(Failure) -> OpenSSHCertificate {
    let subject: OpenSSHPublicKey
    do {
      subject = try OpenSSHPublicKey.parseStrict(keyLine)
    } catch {
      throw Failure("The public key to certify is not valid: \(error)")
    }
    let after = UInt64(max(0, (now.timeIntervalSince1970 - Self.backdate).rounded(.down)))
    let before = UInt64(max(0, (now.timeIntervalSince1970 + ttl).rounded(.up)))
    let request = OpenSSHCertificateRequest(
      subject: subject, serial: serial, keyID: keyID,
      principals: [Self.principal(user: user, instance: instance)],
      validAfter: after, validBefore: before,
      criticalOptions: sources.isEmpty ? [] : [.sourceAddress(sources.map(\.description))],
      extensions: Self.extensions, comment: keyID)
    do {
      return try request.signed(by: signer)
    } catch {
      throw Failure("Cannot sign the certificate for \(user) on \(instance): \(error)")
    }
  }

  // MARK: - Revocation

  /// The serials revoked so far (from `FILE.serials` beside the KRL).
  public func revokedSerials() throws(Failure) -> [UInt64] {
    guard let file = revokedKeysFile else { return [] }
    guard let data = FileManager.default.contents(atPath: file + ".serials") else { return [] }
    var serials: [UInt64] = []
    for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
      let text = line.trimmingCharacters(in: .whitespaces)
      if text.isEmpty || text.hasPrefix("#") { continue }
      guard let serial = UInt64(text), serial > 0 else {
        throw Failure(
          "\(file).serials:\(index + 1): '\(text.prefix(40))' is not a certificate serial; expected a whole number above 0."
        )
      }
      serials.append(serial)
    }
    return serials
  }

  /// Revokes `serials` (of certificates of this CA or a previous one): rewrites the serial list
  /// and the KRL, each atomically; returns every serial now revoked.
  @discardableResult
  public func revoke(_ serials: [UInt64], now: Date) throws(Failure) -> [UInt64] {
    guard let file = revokedKeysFile else {
      throw Failure(
        "No 'revoked_keys_file' is set under 'certificates' in broker.yml; set one for sshd's RevokedKeys.")
    }
    if let zero = serials.first(where: { $0 == 0 }) {
      throw Failure("Serial \(zero) is not a certificate serial; expected a whole number above 0.")
    }
    let all = Array(Set(try revokedSerials() + serials)).sorted()
    let stamp = UInt64(max(0, now.timeIntervalSince1970))
    do {
      var krl = try KeyRevocationList(version: stamp, generatedDate: stamp, comment: "sixty broker")
      try krl.revokeCertificates(serials: all, issuedBy: signer)
      for key in previous { try krl.revokeCertificates(serials: all, issuedBy: key) }
      let list = "# certificate serials revoked by 'sixty broker revoke'\n" + all.map { "\($0)\n" }.joined()
      try Self.writeAtomically(Array(list.utf8), to: file + ".serials", mode: 0o644)
      try Self.writeAtomically(krl.encoded(), to: file, mode: 0o644)
    } catch {
      throw Failure("Cannot write the revocation list \(file): \(error).")
    }
    return all
  }

  /// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
  static func writeAtomically(_ bytes: [UInt8], to path: String, mode: Int) throws {
    let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    guard
      FileManager.default.createFile(
        atPath: temporary, contents: Data(bytes), attributes: [.posixPermissions: mode])
    else {
      throw Failure("cannot create \(temporary)")
    }
    guard rename(temporary, path) == 0 else {
      let reason = String(cString: strerror(errno))
      unlink(temporary)
      throw Failure("cannot rename \(temporary) to \(path): \(reason)")
    }
  }
}
