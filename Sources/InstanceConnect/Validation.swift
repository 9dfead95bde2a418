/// Request checks taken from the EC2 Instance Connect service model (2018-04-02), shared by the
/// client (to fail before sending) and the broker (to answer as AWS does).
public enum InstanceConnectValidation {
  /// `^i-[a-f0-9]+$`, 10 to 32 characters. (The model's length allows the old 8-digit ids too.)
  public static func isInstanceID(_ id: String) -> Bool {
    (10...32).contains(id.utf8.count) && id.hasPrefix("i-")
      && id.utf8.dropFirst(2).allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
  }

  /// The model's `InstanceOSUser` pattern, 1 to 32 characters:
  /// `(^[A-Za-z_][A-Za-z0-9\@\._-]{0,30}[A-Za-z0-9\$_-]?$)|(^(?=.{2,32}$)[0-9]{1,32}[A-Za-z\@\._-][A-Za-z0-9\@\._-]*[A-Za-z0-9\$_-]?$)`.
  public static func isOSUser(_ user: String) -> Bool {
    let c = Array(user.utf8)
    guard (1...32).contains(c.count) else { return false }
    func letter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
    func digit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    func middle(_ b: UInt8) -> Bool {
      letter(b) || digit(b) || b == 0x40 || b == 0x2E || b == 0x5F || b == 0x2D
    }
    func last(_ b: UInt8) -> Bool { letter(b) || digit(b) || b == 0x24 || b == 0x5F || b == 0x2D }
    // First alternative: [A-Za-z_] [middle]{0,30} [last]?
    if letter(c[0]) || c[0] == 0x5F {
      let rest = c.dropFirst()
      if rest.allSatisfy(middle) && rest.count <= 30 { return true }
      if let tail = rest.last, last(tail), rest.dropLast().allSatisfy(middle), rest.count - 1 <= 30 {
        return true
      }
      return false
    }
    // Second alternative: digits, then [A-Za-z@._-], then [middle]*, then [last]?; length 2..32.
    guard c.count >= 2, digit(c[0]) else { return false }
    let digits = c.prefix(while: digit).count
    guard digits < c.count else { return false }
    let next = c[digits]
    guard letter(next) || next == 0x40 || next == 0x2E || next == 0x5F || next == 0x2D else { return false }
    let rest = c[(digits + 1)...]
    if rest.allSatisfy(middle) { return true }
    if let tail = rest.last, last(tail), rest.dropLast().allSatisfy(middle) { return true }
    return false
  }

  /// `^(\w+-){2,3}\d+\w+$`, 6 to 32 characters, e.g. `us-east-1a`.
  public static func isAvailabilityZone(_ zone: String) -> Bool {
    guard (6...32).contains(zone.utf8.count) else { return false }
    let parts = zone.split(separator: "-", omittingEmptySubsequences: false)
    guard (3...4).contains(parts.count) else { return false }
    func word(_ s: Substring) -> Bool {
      !s.isEmpty
        && s.utf8.allSatisfy {
          ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F
        }
    }
    guard parts.allSatisfy(word), let lastPart = parts.last else { return false }
    let digits = lastPart.utf8.prefix { $0 >= 0x30 && $0 <= 0x39 }.count
    return digits >= 1 && digits < lastPart.utf8.count
  }

  /// `SSHPublicKey` is 80 to 4096 characters.
  public static let publicKeyLength = 80...4096
  /// `SerialPort` is 0 to 0.
  public static let serialPorts = 0...0
}
