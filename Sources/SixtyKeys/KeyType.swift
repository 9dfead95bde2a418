/// The kinds of ephemeral key Sixty makes.
public enum KeyType: String, Sendable, CaseIterable, CustomStringConvertible {
  case ed25519
  case rsa2048
  case rsa4096

  /// Parses `ed25519`, `rsa` (2048 bits), `rsa2048` or `rsa4096`.
  public init?(parsing text: String) {
    switch text.lowercased() {
    case "ed25519": self = .ed25519
    case "rsa", "rsa2048", "rsa-2048": self = .rsa2048
    case "rsa4096", "rsa-4096": self = .rsa4096
    default: return nil
    }
  }

  /// The OpenSSH key type name.
  public var sshName: String { self == .ed25519 ? "ssh-ed25519" : "ssh-rsa" }

  /// The key's file name in a key directory: ssh-keygen's, with the size for RSA 4096 so that a
  /// run can hold both RSA sizes.
  public var fileName: String {
    switch self {
    case .ed25519: "id_ed25519"
    case .rsa2048: "id_rsa"
    case .rsa4096: "id_rsa4096"
    }
  }

  public var description: String { rawValue }
}
