import Crypto
import Foundation
import _CryptoExtras

/// A critical option or an extension of an OpenSSH certificate (PROTOCOL.certkeys).
///
/// On the wire each is `string name, string data`. A flag (`value == nil`) has empty data; an
/// option with a value holds that value as a string inside `data`, so `force-command "a"` is
/// encoded as `00 00 00 0d "force-command" 00 00 00 05 00 00 00 01 61`.
public struct OpenSSHCertificateOption: Sendable, Hashable {
  public let name: String
  /// The value, or nil for a flag.
  public let value: String?

  /// An option or extension under any name. Known names are checked for their format when the
  /// certificate is signed; see `OpenSSHCertificateRequest.validate()`.
  public init(name: String, value: String?) {
    self.name = name
    self.value = value
  }

  /// A flag: an option or extension with empty data.
  public static func flag(_ name: String) -> OpenSSHCertificateOption {
    OpenSSHCertificateOption(name: name, value: nil)
  }

  /// The critical option `source-address`: the addresses (CIDR, `10.0.0.0/8`, `2001:db8::/32`,
  /// or a single address) from which the certificate is accepted, joined with commas.
  public static func sourceAddress(_ addresses: [String]) -> OpenSSHCertificateOption {
    OpenSSHCertificateOption(name: "source-address", value: addresses.joined(separator: ","))
  }

  /// The critical option `force-command`: the command run instead of the one the user asks for.
  public static func forceCommand(_ command: String) -> OpenSSHCertificateOption {
    OpenSSHCertificateOption(name: "force-command", value: command)
  }

  /// The critical flag `verify-required` (FIDO user verification).
  public static let verifyRequired = flag("verify-required")

  /// The extension flags OpenSSH defines for user certificates.
  public static let permitPTY = flag("permit-pty")
  public static let permitPortForwarding = flag("permit-port-forwarding")
  public static let permitAgentForwarding = flag("permit-agent-forwarding")
  public static let permitX11Forwarding = flag("permit-X11-forwarding")
  public static let permitUserRC = flag("permit-user-rc")
  public static let noTouchRequired = flag("no-touch-required")

  /// Critical options whose data is one string.
  static let criticalWithValue: Set<String> = ["force-command", "source-address"]
  /// Critical options and extensions that OpenSSH defines as flags.
  static let criticalFlags: Set<String> = ["verify-required"]
  static let extensionFlags: Set<String> = [
    "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-pty",
    "permit-user-rc", "no-touch-required",
  ]
}

/// Why a name, key ID or other text field was refused. Found by looking at Unicode scalars and
/// UTF-8 bytes, never at `Character`s, so that combining marks cannot hide a forbidden scalar.
public enum CertificateTextProblem: Sendable, Equatable, CustomStringConvertible {
  case empty
  /// The UTF-8 length and the limit.
  case tooLong(bytes: Int, limit: Int)
  case space
  case comma
  /// A control character (U+0000–U+001F or U+007F), by scalar value.
  case controlCharacter(UInt32)
  /// A scalar outside ASCII, by value.
  case nonASCII(UInt32)
  /// A double quote, which would end a quoted `principals="…"` option.
  case doubleQuote

  public var description: String {
    switch self {
    case .empty: "it is empty"
    case .tooLong(let bytes, let limit): "it is \(bytes) bytes long, more than the limit of \(limit)"
    case .space: "it contains a space"
    case .comma: "it contains a comma"
    case .controlCharacter(let value):
      "it contains the control character \(CertificateError.scalarName(value))"
    case .nonASCII(let value): "it contains the non-ASCII character \(CertificateError.scalarName(value))"
    case .doubleQuote: "it contains a double quote"
    }
  }
}

/// Why a certificate could not be made. The values quoted are sanitised excerpts: printable
/// ASCII kept, anything else written as `\u{…}`, at most 64 scalars.
public enum CertificateError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The subject key's type (excerpt) is not one a certificate can be made for.
  case unsupportedSubjectKey(String)
  /// The subject key's blob does not hold the fields of its type.
  case malformedSubjectKey(String)
  case noPrincipals
  case tooManyPrincipals(Int)
  case invalidPrincipal(String, CertificateTextProblem)
  case duplicatePrincipal(String)
  case invalidKeyID(String, CertificateTextProblem)
  case invalidValidity(validAfter: UInt64, validBefore: UInt64)
  /// The option's name (excerpt), whether it is critical, and what is wrong.
  case invalidOptionName(String, critical: Bool, CertificateTextProblem)
  case duplicateOption(String, critical: Bool)
  /// The option's name, its value (excerpt, or nil for a flag) and what was expected.
  case invalidOptionValue(name: String, value: String?, expected: String)
  case invalidComment(String, CertificateTextProblem)
  /// The CA key could not sign (the reason carries no key material).
  case signingFailed(String)

  public var description: String {
    switch self {
    case .unsupportedSubjectKey(let type):
      return
        "The subject key type '\(type)' cannot be certified; expected 'ssh-ed25519', 'ecdsa-sha2-nistp256' or 'ssh-rsa'."
    case .malformedSubjectKey(let why):
      return
        "The subject public key is malformed: \(why); expected a key as OpenSSHPublicKey.parseStrict returns it."
    case .noPrincipals:
      return
        "The certificate has no principals; expected at least one user name (an empty list would make it valid for every user)."
    case .tooManyPrincipals(let count):
      return
        "The certificate has \(count) principals; expected at most \(OpenSSHCertificateRequest.maxPrincipals)."
    case .invalidPrincipal(let value, let problem):
      return
        "The principal '\(value)' is not allowed: \(problem); expected 1 to \(OpenSSHCertificateRequest.maxPrincipalLength) printable ASCII characters other than spaces and commas."
    case .duplicatePrincipal(let value):
      return "The principal '\(value)' is listed twice; expected each principal once."
    case .invalidKeyID(let value, let problem):
      return
        "The key ID '\(value)' is not allowed: \(problem); expected 1 to \(OpenSSHCertificateRequest.maxKeyIDLength) printable ASCII characters other than spaces and commas."
    case .invalidValidity(let after, let before):
      return
        "The validity period runs from \(after) (valid_after) to \(before) (valid_before); expected valid_after to be earlier than valid_before."
    case .invalidOptionName(let name, let critical, let problem):
      return
        "The \(critical ? "critical option" : "extension") name '\(name)' is not allowed: \(problem); expected 1 to \(OpenSSHCertificateRequest.maxOptionNameLength) printable ASCII characters other than spaces and commas."
    case .duplicateOption(let name, let critical):
      return
        "The \(critical ? "critical option" : "extension") '\(name)' is given twice; expected each name at most once."
    case .invalidOptionValue(let name, let value, let expected):
      let shown = value.map { "the value '\($0)'" } ?? "no value"
      return "The option '\(name)' has \(shown); expected \(expected)."
    case .invalidComment(let value, let problem):
      return
        "The certificate comment '\(value)' is not allowed: \(problem); expected printable ASCII characters or spaces."
    case .signingFailed(let why):
      return "The CA key could not sign the certificate: \(why)."
    }
  }

  /// `U+00E9`.
  static func scalarName(_ value: UInt32) -> String {
    let hex = String(value, radix: 16, uppercase: true)
    return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
  }

  /// A short excerpt of untrusted text that is safe to print: printable ASCII as is, any other
  /// scalar as `\u{…}`, at most 64 scalars.
  static func excerpt(_ text: String) -> String {
    var out = ""
    for (index, scalar) in text.unicodeScalars.enumerated() {
      if index == 64 { return out + "…" }
      if scalar.value >= 0x20 && scalar.value < 0x7F {
        out.unicodeScalars.append(scalar)
      } else {
        out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
      }
    }
    return out
  }
}

/// What to certify: an OpenSSH user certificate (type 1, PROTOCOL.certkeys) for a public key.
///
/// All text comes from untrusted input upstream and is checked, scalar by scalar, by
/// `validate()`, which `signed(by:)` runs first.
public struct OpenSSHCertificateRequest: Sendable, Equatable {
  /// The key being certified: `ssh-ed25519`, `ecdsa-sha2-nistp256` or `ssh-rsa`.
  public var subject: OpenSSHPublicKey
  /// Any value; 0 means "no serial" to OpenSSH, and a KRL cannot revoke it by serial.
  public var serial: UInt64
  /// Free text logged by sshd; printable ASCII without spaces or commas.
  public var keyID: String
  /// The user names the certificate is valid for (at least one).
  public var principals: [String]
  /// Seconds since 1970: valid from `validAfter` (inclusive) until `validBefore` (exclusive).
  /// `UInt64.max` as `validBefore` is "forever".
  public var validAfter: UInt64
  public var validBefore: UInt64
  /// Written sorted by name, whatever the order here.
  public var criticalOptions: [OpenSSHCertificateOption]
  /// Written sorted by name; empty is allowed (no PTY, no forwarding).
  public var extensions: [OpenSSHCertificateOption]
  /// The comment of the certificate line; nil: the key ID.
  public var comment: String?

  public static let maxPrincipals = 256
  public static let maxPrincipalLength = 255
  public static let maxKeyIDLength = 1024
  public static let maxOptionNameLength = 255
  public static let maxOptionValueLength = 8192

  public init(
    subject: OpenSSHPublicKey, serial: UInt64, keyID: String, principals: [String], validAfter: UInt64,
    validBefore: UInt64, criticalOptions: [OpenSSHCertificateOption] = [],
    extensions: [OpenSSHCertificateOption] = [], comment: String? = nil
  ) {
    self.subject = subject
    self.serial = serial
    self.keyID = keyID
    self.principals = principals
    self.validAfter = validAfter
    self.validBefore = validBefore
    self.criticalOptions = criticalOptions
    self.extensions = extensions
    self.comment = comment
  }

  /// The certificate key type for a plain key type, e.g. `ssh-ed25519-cert-v01@openssh.com`.
  public static func certificateType(for keyType: String) -> String? {
    OpenSSHPublicKey.supportedTypes.contains(keyType) ? keyType + "-cert-v01@openssh.com" : nil
  }

  /// Checks every field.
  /// - Throws: the first `CertificateError` found, naming the value at fault.
  public func validate() throws(CertificateError) {
    _ = try subjectFields()
    if principals.isEmpty { throw .noPrincipals }
    if principals.count > Self.maxPrincipals { throw .tooManyPrincipals(principals.count) }
    var seen = Set<String>()
    for principal in principals {
      if let problem = Self.tokenProblem(principal, limit: Self.maxPrincipalLength) {
        throw .invalidPrincipal(CertificateError.excerpt(principal), problem)
      }
      if !seen.insert(principal).inserted { throw .duplicatePrincipal(principal) }
    }
    if let problem = Self.tokenProblem(keyID, limit: Self.maxKeyIDLength) {
      throw .invalidKeyID(CertificateError.excerpt(keyID), problem)
    }
    guard validAfter < validBefore else {
      throw .invalidValidity(validAfter: validAfter, validBefore: validBefore)
    }
    _ = try Self.sortedOptions(criticalOptions, critical: true)
    _ = try Self.sortedOptions(extensions, critical: false)
    if let comment, let problem = Self.commentProblem(comment) {
      throw .invalidComment(CertificateError.excerpt(comment), problem)
    }
  }

  /// Builds the certificate and signs it with `ca` (Ed25519: `ssh-ed25519`; ECDSA P-256:
  /// `ecdsa-sha2-nistp256`; RSA: `rsa-sha2-512`), under a fresh 32-byte random nonce.
  /// - Throws: `CertificateError` when a field is invalid or signing fails.
  public func signed(by ca: SSHKeyPair) throws(CertificateError) -> OpenSSHCertificate {
    let nonce = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    return try signed(by: ca, nonce: nonce)
  }

  /// `signed(by:)` with a given nonce (tests).
  func signed(by ca: SSHKeyPair, nonce: [UInt8]) throws(CertificateError) -> OpenSSHCertificate {
    try validate()
    let (certificateType, fields) = try subjectFields()
    var w = SSHWriter()
    w.string(certificateType)
    w.string(nonce)
    w.bytes.append(contentsOf: fields)
    w.uint64(serial)
    w.uint32(1)  // SSH_CERT_TYPE_USER
    w.string(keyID)
    var names = SSHWriter()
    for principal in principals { names.string(principal) }
    w.string(names.bytes)
    w.uint64(validAfter)
    w.uint64(validBefore)
    w.string(Self.encodeOptions(try Self.sortedOptions(criticalOptions, critical: true)))
    w.string(Self.encodeOptions(try Self.sortedOptions(extensions, critical: false)))
    w.string([UInt8]())  // reserved
    w.string(ca.publicBlob)
    let signature = try Self.signature(over: w.bytes, by: ca)
    w.string(signature)
    return OpenSSHCertificate(
      type: certificateType, blob: w.bytes, comment: comment ?? keyID, request: self,
      caFingerprint: ca.fingerprint)
  }

  /// The certificate type and the subject's public fields: its blob after the type name.
  func subjectFields() throws(CertificateError) -> (String, [UInt8]) {
    guard let certificateType = Self.certificateType(for: subject.type) else {
      throw .unsupportedSubjectKey(CertificateError.excerpt(subject.type))
    }
    var reader = SSHReader(subject.blob)
    guard let inner = reader.string(), inner == Array(subject.type.utf8) else {
      throw .malformedSubjectKey("its data does not start with its type")
    }
    let start = reader.offset
    let complete: Bool
    switch subject.type {
    case "ssh-ed25519":
      complete = reader.string()?.count == 32
    case "ecdsa-sha2-nistp256":
      complete = reader.string() == Array("nistp256".utf8) && reader.string()?.count == 65
    default:
      complete = reader.positiveMPInt() != nil && reader.positiveMPInt() != nil
    }
    guard complete, reader.isAtEnd else {
      throw .malformedSubjectKey("its data does not hold exactly the fields of a \(subject.type) key")
    }
    return (certificateType, Array(subject.blob[start...]))
  }

  /// What is wrong with a principal or key ID, if anything: it must be 1 to `limit` bytes of
  /// printable ASCII without spaces or commas.
  static func tokenProblem(_ text: String, limit: Int) -> CertificateTextProblem? {
    if text.utf8.isEmpty { return .empty }
    for scalar in text.unicodeScalars {
      switch scalar.value {
      case 0x20: return .space
      case 0x2C: return .comma
      case 0..<0x20, 0x7F: return .controlCharacter(scalar.value)
      case 0x80...: return .nonASCII(scalar.value)
      default: continue
      }
    }
    if text.utf8.count > limit { return .tooLong(bytes: text.utf8.count, limit: limit) }
    return nil
  }

  /// A comment may hold spaces, but is otherwise printable ASCII.
  static func commentProblem(_ text: String) -> CertificateTextProblem? {
    for scalar in text.unicodeScalars {
      switch scalar.value {
      case 0..<0x20, 0x7F: return .controlCharacter(scalar.value)
      case 0x80...: return .nonASCII(scalar.value)
      default: continue
      }
    }
    if text.utf8.count > 1024 { return .tooLong(bytes: text.utf8.count, limit: 1024) }
    return nil
  }

  /// The options sorted by the bytes of their names, after checking names and known values.
  static func sortedOptions(_ options: [OpenSSHCertificateOption], critical: Bool) throws(CertificateError)
    -> [OpenSSHCertificateOption]
  {
    for option in options {
      if let problem = tokenProblem(option.name, limit: maxOptionNameLength) {
        throw .invalidOptionName(CertificateError.excerpt(option.name), critical: critical, problem)
      }
      try checkValue(of: option, critical: critical)
    }
    let sorted = options.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
    for (a, b) in zip(sorted, sorted.dropFirst()) where a.name == b.name {
      throw .duplicateOption(a.name, critical: critical)
    }
    return sorted
  }

  static func checkValue(of option: OpenSSHCertificateOption, critical: Bool) throws(CertificateError) {
    let name = option.name
    let shown = option.value.map(CertificateError.excerpt)
    let isFlag =
      critical
      ? OpenSSHCertificateOption.criticalFlags.contains(name)
      : OpenSSHCertificateOption.extensionFlags.contains(name)
    if isFlag {
      guard option.value == nil else {
        throw .invalidOptionValue(name: name, value: shown, expected: "no value: it is a flag")
      }
      return
    }
    if critical && OpenSSHCertificateOption.criticalWithValue.contains(name) && option.value == nil {
      throw .invalidOptionValue(name: name, value: nil, expected: "a value")
    }
    guard let value = option.value else { return }
    if critical && name == "source-address" {
      guard let bad = sourceAddressProblem(value) else { return }
      throw .invalidOptionValue(
        name: name, value: shown,
        expected:
          "a comma-separated list of IPv4 or IPv6 addresses, each with an optional prefix length and no host bits set (first bad entry: '\(CertificateError.excerpt(bad))')"
      )
    }
    let controls = value.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    if controls || value.utf8.count > maxOptionValueLength
      || (critical && name == "force-command" && value.isEmpty)
    {
      throw .invalidOptionValue(
        name: name, value: shown,
        expected: "1 to \(maxOptionValueLength) bytes of text without control characters")
    }
  }

  /// The first entry of a `source-address` list that sshd would not read as an address or a
  /// network (`a.b.c.d[/n]`, `x:y::z[/n]`, host bits zero), or nil when all are good.
  static func sourceAddressProblem(_ list: String) -> String? {
    let entries = list.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    for entry in entries {
      // The characters sshd allows, checked on bytes so that no NUL reaches inet_pton.
      guard !entry.isEmpty, entry.utf8.count <= 49,
        entry.utf8.allSatisfy({ b in
          (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46) || b == 0x2E
            || b == 0x3A || b == 0x2F
        })
      else { return entry }
      let parts = entry.split(separator: "/", omittingEmptySubsequences: false)
      guard parts.count <= 2 else { return entry }
      let address: [UInt8]
      var v4 = in_addr()
      var v6 = in6_addr()
      if inet_pton(AF_INET, String(parts[0]), &v4) == 1 {
        address = withUnsafeBytes(of: &v4) { Array($0) }
      } else if inet_pton(AF_INET6, String(parts[0]), &v6) == 1 {
        address = withUnsafeBytes(of: &v6) { Array($0) }
      } else {
        return entry
      }
      var prefix = address.count * 8
      if parts.count == 2 {
        guard !parts[1].isEmpty, parts[1].utf8.count <= 3,
          parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
          let n = Int(parts[1]), n <= prefix
        else { return entry }
        prefix = n
      }
      // No bit may be set after the prefix.
      for index in address.indices {
        let keep = min(8, max(0, prefix - index * 8))
        let hostMask: UInt8 = keep == 8 ? 0 : 0xFF >> keep
        if address[index] & hostMask != 0 { return entry }
      }
    }
    return nil
  }

  static func encodeOptions(_ options: [OpenSSHCertificateOption]) -> [UInt8] {
    var w = SSHWriter()
    for option in options {
      w.string(option.name)
      if let value = option.value {
        var inner = SSHWriter()
        inner.string(value)
        w.string(inner.bytes)
      } else {
        w.string([UInt8]())
      }
    }
    return w.bytes
  }

  /// The SSH signature blob of `data` by `ca`.
  static func signature(over data: [UInt8], by ca: SSHKeyPair) throws(CertificateError) -> [UInt8] {
    var w = SSHWriter()
    switch ca.material {
    case .ed25519(let seed, _):
      guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed),
        let signature = try? key.signature(for: data)
      else { throw .signingFailed("the Ed25519 key was refused") }
      w.string("ssh-ed25519")
      w.string(Array(signature))
    case .ecdsaP256(let scalar, _):
      // ecdsa-sha2-nistp256: SHA-256 of the data; the blob is mpint r, mpint s.
      guard let key = try? P256.Signing.PrivateKey(rawRepresentation: scalar),
        let signature = try? key.signature(for: data)
      else { throw .signingFailed("the ECDSA P-256 key was refused") }
      let raw = Array(signature.rawRepresentation)
      var inner = SSHWriter()
      inner.mpint(Array(raw.prefix(32)))
      inner.mpint(Array(raw.suffix(32)))
      w.string("ecdsa-sha2-nistp256")
      w.string(inner.bytes)
    case .rsa(let n, let e, let d, _, let p, let q):
      // rsa-sha2-512, as ssh-keygen signs with an RSA CA key.
      guard let key = try? _RSA.Signing.PrivateKey(n: n, e: e, d: d, p: p, q: q),
        let signature = try? key.signature(for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5)
      else { throw .signingFailed("the RSA key was refused") }
      w.string("rsa-sha2-512")
      w.string(Array(signature.rawRepresentation))
    }
    return w.bytes
  }
}

/// A signed OpenSSH user certificate.
public struct OpenSSHCertificate: Sendable, Equatable {
  /// `ssh-ed25519-cert-v01@openssh.com`, `ecdsa-sha2-nistp256-cert-v01@openssh.com` or
  /// `ssh-rsa-cert-v01@openssh.com`.
  public let type: String
  /// The certificate in the SSH wire encoding (the base64 part of the line, decoded).
  public let blob: [UInt8]
  public let comment: String
  /// What was certified.
  public let request: OpenSSHCertificateRequest
  /// The `SHA256:` fingerprint of the CA key that signed it.
  public let caFingerprint: String

  /// `TYPE BASE64 COMMENT`, the content of a `-cert.pub` file (without the newline).
  public var line: String {
    "\(type) \(Data(blob).base64EncodedString())" + (comment.isEmpty ? "" : " \(comment)")
  }

  /// The fingerprint OpenSSH shows for the certificate: the subject key's.
  public var fingerprint: String { request.subject.fingerprint }

  /// The 32-byte nonce: the certificate's first field after its type.
  public var nonce: [UInt8] {
    var reader = SSHReader(blob)
    _ = reader.string()
    return reader.string() ?? []
  }
}

extension SSHKeyPair {
  /// The CA key's line for sshd's `TrustedUserCAKeys` file: the public key line.
  public var trustedUserCAKeysLine: String { publicKeyLine }

  /// The CA key's `authorized_keys` line: `cert-authority TYPE BASE64`, optionally restricted
  /// to certificates naming one of `principals` (each checked like a certificate principal).
  /// - Throws: `CertificateError` for an invalid principal.
  public func certAuthorityLine(principals: [String] = []) throws(CertificateError) -> String {
    var seen = Set<String>()
    for principal in principals {
      if let problem = OpenSSHCertificateRequest.tokenProblem(
        principal, limit: OpenSSHCertificateRequest.maxPrincipalLength)
      {
        throw .invalidPrincipal(CertificateError.excerpt(principal), problem)
      }
      // A double quote would end the principals="…" option.
      if principal.utf8.contains(0x22) {
        throw .invalidPrincipal(CertificateError.excerpt(principal), .doubleQuote)
      }
      if !seen.insert(principal).inserted { throw .duplicatePrincipal(principal) }
    }
    let options =
      principals.isEmpty
      ? "cert-authority" : "cert-authority,principals=\"\(principals.joined(separator: ","))\""
    return "\(options) \(authorizedKey)"
  }

  /// Signs `request` with this key as the CA; see `OpenSSHCertificateRequest.signed(by:)`.
  public func signCertificate(_ request: OpenSSHCertificateRequest) throws(CertificateError)
    -> OpenSSHCertificate
  {
    try request.signed(by: self)
  }
}

extension SSHWriter {
  mutating func uint64(_ value: UInt64) {
    uint32(UInt32(value >> 32))
    uint32(UInt32(value & 0xFFFF_FFFF))
  }
}
