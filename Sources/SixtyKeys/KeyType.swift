/// The kinds of ephemeral key Sixty makes.
public enum KeyType: String, Sendable, CaseIterable, CustomStringConvertible {
  case ed25519
  case rsa2048
  case rsa4096
  /// ECDSA on NIST P-256 (`ecdsa-sha2-nistp256`).
  case ecdsaP256 = "ecdsa-p256"

  /// Parses `ed25519`, `rsa` (2048 bits), `rsa2048`, `rsa4096` or `ecdsa` (P-256).
  public init?(parsing text: String) {
    switch text.lowercased() {
    case "ed25519": self = .ed25519
    case "rsa", "rsa2048", "rsa-2048": self = .rsa2048
    case "rsa4096", "rsa-4096": self = .rsa4096
    case "ecdsa", "ecdsa-p256", "ecdsa256", "nistp256": self = .ecdsaP256
    default: return nil
    }
  }

  /// The OpenSSH key type name.
  public var sshName: String {
    switch self {
    case .ed25519: "ssh-ed25519"
    case .rsa2048, .rsa4096: "ssh-rsa"
    case .ecdsaP256: "ecdsa-sha2-nistp256"
    }
  }

  /// The key's file name in a key directory: ssh-keygen's, with the size for RSA 4096 so that a
  /// run can hold both RSA sizes.
  public var fileName: String {
    switch self {
    case .ed25519: "id_ed25519"
    case .rsa2048: "id_rsa"
    case .rsa4096: "id_rsa4096"
    case .ecdsaP256: "id_ecdsa"
    }
  }

  public var description: String { rawValue }
}
