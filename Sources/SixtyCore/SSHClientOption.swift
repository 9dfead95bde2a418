/// Checks for the ssh_config options (`Key=Value`) and jump hosts that reach Sixty's `ssh`
/// command lines from an inventory (hostile: anyone who can edit it) or from the command line
/// (the operator's own). Checked on UTF-8 bytes.
public enum SSHClientOption {
  /// Options an inventory may set for its hosts: how to reach and talk to a host, nothing that
  /// runs a program on the machine running Sixty, forwards its ports or agent, or overrides
  /// what Sixty sets itself (key, host key checking, connection sharing).
  public static let inventoryAllowed: Set<String> = [
    "addressfamily", "bindaddress", "bindinterface", "casignaturealgorithms", "checkhostip", "ciphers",
    "compression", "connectionattempts", "connecttimeout", "fingerprinthash", "gssapiauthentication",
    "hostkeyalgorithms", "hostkeyalias", "ipqos", "kexalgorithms", "loglevel", "macs",
    "numberofpasswordprompts", "obscurekeystroketiming", "port", "preferredauthentications", "proxyjump",
    "pubkeyacceptedalgorithms", "pubkeyacceptedkeytypes", "rekeylimit", "requiredrsasize",
    "serveraliveinterval", "serveralivecountmax", "tcpkeepalive", "user", "verifyhostkeydns",
  ]

  /// Options that make ssh run a program on the machine running Sixty (or load a library into
  /// it), never accepted from an inventory.
  public static let runsLocalCommands: Set<String> = [
    "proxycommand", "localcommand", "permitlocalcommand", "knownhostscommand", "match", "include",
    "pkcs11provider", "securitykeyprovider", "identityagent", "xauthlocation", "escapechar",
  ]

  /// Options Sixty sets on every ssh it runs; another value would break the run or the policy.
  public static let setBySixty: Set<String> = [
    "batchmode", "controlmaster", "controlpath", "controlpersist", "identityfile", "identitiesonly",
    "stricthostkeychecking", "userknownhostsfile", "globalknownhostsfile", "remotecommand", "requesttty",
    "sessiontype", "stdinnull", "forkafterauthentication", "hostname", "certificatefile",
  ]

  /// Of those, the ones `sixty ssh` (an interactive session of the operator's) refuses: those
  /// that would replace the pushed key or where it connects. Host key checking, BatchMode,
  /// connection sharing and the like stay the operator's there (their `-o` comes first).
  public static let setBySixtySSH: Set<String> = [
    "identityfile", "identitiesonly", "hostname", "certificatefile",
  ]

  /// The option's name as ssh compares it (case-insensitive), or nil when `option` is not
  /// `Key=Value` (or `Key Value`) with a key of ASCII letters and digits and a value free of control characters.
  public static func name(of option: String) -> String? {
    let bytes = Array(option.utf8)
    guard let split = bytes.firstIndex(where: { $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: " ") }),
      split > 0, split < bytes.count - 1
    else { return nil }
    let key = bytes[..<split]
    guard let first = key.first, SafeText.isAlphanumeric(first),
      !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first),
      key.allSatisfy(SafeText.isAlphanumeric)
    else { return nil }
    guard !bytes[(split + 1)...].contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return nil }
    return String(decoding: key, as: UTF8.self).lowercased()
  }

  /// Why an inventory may not set `option`, or nil when it may.
  public static func inventoryProblem(_ option: String) -> String? {
    guard let name = name(of: option) else {
      return "expected Key=Value (an ssh_config option such as ServerAliveInterval=30)"
    }
    if runsLocalCommands.contains(name) {
      return
        "it can make ssh run a program on the machine running Sixty, and an inventory may not do that; set it in your own ssh_config (-F) if you trust it"
    }
    if setBySixty.contains(name) {
      return "Sixty sets it itself on every connection (key, host key checking, connection sharing)"
    }
    guard inventoryAllowed.contains(name) else {
      return
        "it is not one of the options an inventory may set (\(inventoryAllowed.sorted().joined(separator: ", "))); set it in your own ssh_config (-F)"
    }
    if name == "proxyjump" {
      let value = String(
        decoding: option.utf8.drop(while: { $0 != UInt8(ascii: "=") && $0 != UInt8(ascii: " ") }).dropFirst(),
        as: UTF8.self)
      return jumpProblem(value)
    }
    return nil
  }

  /// Why `-o option` on the command line cannot be used, or nil when it can; `interactive` for
  /// `sixty ssh`, which leaves more to the operator (see `setBySixtySSH`).
  public static func commandLineProblem(_ option: String, interactive: Bool = false) -> String? {
    guard let name = name(of: option) else {
      return "expected Key=Value (an ssh_config option such as ServerAliveInterval=30)"
    }
    if (interactive ? setBySixtySSH : setBySixty).contains(name) {
      return
        "Sixty sets it itself on every connection (key, host key checking per the policy's host_key_checking, connection sharing)"
    }
    return nil
  }

  /// Why `jump` is not a ProxyJump value, or nil: comma-separated `[user@]host[:port]` hops, each
  /// user and host checked like the inventory's, or `none`.
  public static func jumpProblem(_ jump: String) -> String? {
    if jump == "none" { return nil }
    let hops = jump.split(separator: ",", omittingEmptySubsequences: false)
    guard !hops.isEmpty else { return "expected [user@]host[:port], comma-separated" }
    for hop in hops {
      var rest = Substring(hop)
      if let at = rest.utf8.lastIndex(of: UInt8(ascii: "@")) {
        let user = String(rest[..<at])
        guard SafeText.isUserName(user) else {
          return "the jump host user \(SafeText.quoted(user)) is not a valid user name"
        }
        rest = rest[rest.utf8.index(after: at)...]
      }
      var host = String(rest)
      if rest.utf8.first == UInt8(ascii: "["), let close = rest.utf8.firstIndex(of: UInt8(ascii: "]")) {
        host = String(rest[...close])
        rest = rest[rest.utf8.index(after: close)...]
      } else if let colon = rest.utf8.lastIndex(of: UInt8(ascii: ":")),
        rest.utf8.filter({ $0 == UInt8(ascii: ":") }).count == 1
      {
        host = String(rest[..<colon])
        rest = rest[colon...]
      } else {
        rest = ""
      }
      guard SafeText.isHostAddress(host), !host.isEmpty else {
        return "the jump host \(SafeText.quoted(host)) is not a host name or IP address"
      }
      if !rest.isEmpty {
        let port = Substring(rest.utf8.dropFirst())
        guard let number = Int(port), (1...65535).contains(number),
          port.utf8.allSatisfy(SafeText.isAlphanumeric)
        else {
          return "the jump host port \(SafeText.quoted(String(port))) is not a port number (1 to 65535)"
        }
      }
    }
    return nil
  }

  /// An inventory host name as ssh's destination, so `Host` blocks of ssh_config match it: 1 to
  /// 253 ASCII letters, digits, `.`, `-` and `_`, starting with a letter or digit. Anything else
  /// (a name with ':', '@', '/', non-ASCII letters) cannot be one, and the address is used.
  public static func isDestination(_ name: String) -> Bool {
    let bytes = name.utf8
    guard (1...253).contains(bytes.count), let first = bytes.first, SafeText.isAlphanumeric(first) else {
      return false
    }
    return bytes.allSatisfy {
      SafeText.isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
        || $0 == UInt8(ascii: "_")
    }
  }
}
