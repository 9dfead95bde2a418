import Foundation
import Testing

@testable import SixtyExecution

/// The built-in client's known_hosts reading and writing, and the ssh_config check that decides
/// whether it may be used.
@Suite struct BuiltinClientTests {
  static let key = "AAAAC3NzaC1lZDI1NTE5AAAAIOTQvpLrfoxJ3cmK+6MRkDVqWbmOTtL2W6VU6H3Yj8Nd"
  static let otherKey = "AAAAC3NzaC1lZDI1NTE5AAAAIBh2C1Yd9Ow2xh3WzM7y0dW6ZyqgXkRSdNqQbqIYUGw2"

  func temporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("builtin-\(UUID().uuidString)")
      .path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }

  @Test func knownHostsLinesMatchAsOpenSSHReadsThem() {
    let name = Array("[10.1.2.3]:2222".utf8)
    // Hashed by `ssh-keygen -H`.
    let hashed = Array("|1|N5lIpAWxjL2T7hegr4lecWdAvfs=|rKfgJoRqWk1gotv7MlUWmC31sqQ=".utf8)
    #expect(KnownHosts.matches(hosts: hashed, name: name))
    #expect(!KnownHosts.matches(hosts: hashed, name: Array("[10.1.2.3]:2223".utf8)))
    #expect(KnownHosts.matches(hosts: Array("web-1,[10.1.2.3]:2222".utf8), name: name))
    #expect(KnownHosts.matches(hosts: Array("*.example.com".utf8), name: Array("a.b.example.com".utf8)))
    #expect(
      !KnownHosts.matches(
        hosts: Array("!bad.example.com,*.example.com".utf8), name: Array("bad.example.com".utf8)))
    #expect(KnownHosts.matches(hosts: Array("10.1.2.?".utf8), name: Array("10.1.2.3".utf8)))
    #expect(KnownHosts.matches(hosts: Array("WEB-1".utf8), name: Array("web-1".utf8)))
    // A hostile pattern costs linear time.
    let long = [UInt8](repeating: UInt8(ascii: "a"), count: 100_000)
    #expect(!KnownHosts.wildcard(Array("*a*a*a*a*a*a*a*b".utf8), long))
    let text = Array(
      """
      # comment
      @cert-authority *.example.com ssh-ed25519 \(Self.otherKey)
      @revoked [10.1.2.3]:2222 ssh-ed25519 \(Self.otherKey)
      [10.1.2.3]:2222 ssh-ed25519 \(Self.key)\r
      [10.1.2.3]:2222 ecdsa-sha2-nistp256 AAAA
      other ssh-ed25519 \(Self.key)
      broken
      """.utf8)
    let entries = KnownHosts.entries(text: text, name: "[10.1.2.3]:2222")
    #expect(
      entries == [
        .init(type: "ssh-ed25519", blob: Self.otherKey, revoked: true),
        .init(type: "ssh-ed25519", blob: Self.key, revoked: false),
        .init(type: "ecdsa-sha2-nistp256", blob: "AAAA", revoked: false),
      ])
  }

  @Test func hostKeysAreCheckedRecordedAndRefused() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let file = dir + "/known_hosts"
    let writer = KnownHostsWriter()
    func check(_ mode: HostKeyCheck.Mode, port: Int = 2222) -> HostKeyCheck {
      HostKeyCheck(mode: mode, host: "web-1", address: "10.1.2.3", port: port, writer: writer)
    }
    #expect(check(.off).verify("ssh-ed25519 \(Self.key)") == nil)
    // First use: recorded, in the form OpenSSH writes.
    #expect(check(.acceptNew(file: file)).verify("ssh-ed25519 \(Self.key)") == nil)
    #expect(try String(contentsOfFile: file, encoding: .utf8) == "[10.1.2.3]:2222 ssh-ed25519 \(Self.key)\n")
    #expect(check(.acceptNew(file: file), port: 22).verify("ssh-ed25519 \(Self.key)") == nil)
    #expect(
      try String(contentsOfFile: file, encoding: .utf8).hasSuffix("\n10.1.2.3 ssh-ed25519 \(Self.key)\n"))
    // An address that could break the file's lines is not recorded.
    let hostile = HostKeyCheck(
      mode: .acceptNew(file: file), host: "web-1", address: "10.1.2.3\n* ssh-ed25519", port: 22,
      writer: writer)
    guard case .hostKey? = hostile.verify("ssh-ed25519 \(Self.key)") else {
      Issue.record("a hostile address was recorded")
      return
    }
    #expect(try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").count == 2)
    // Known: accepted, nothing added.
    #expect(check(.acceptNew(file: file)).verify("ssh-ed25519 \(Self.key)") == nil)
    #expect(try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").count == 2)
    // Changed: refused, saying how to remove the old key.
    guard case .hostKey(let text)? = check(.acceptNew(file: file)).verify("ssh-ed25519 \(Self.otherKey)")
    else {
      Issue.record("a changed key was not refused")
      return
    }
    #expect(text.contains("is not the one recorded in \(file) on first use"))
    #expect(text.contains("ssh-keygen -R '[10.1.2.3]:2222' -f '\(file)'"))
    // Known by another type only: OpenSSH (which negotiates the known type) takes the host.
    guard case .useOpenSSH? = check(.acceptNew(file: file)).verify("ecdsa-sha2-nistp256 AAAA") else {
      Issue.record("a host known by another key type was not handed to OpenSSH")
      return
    }
    // Strict: known accepted, unknown refused, nothing written.
    #expect(check(.strict(files: [file, dir + "/missing"])).verify("ssh-ed25519 \(Self.key)") == nil)
    guard
      case .hostKey(let unknown)? = check(.strict(files: [file]), port: 2223).verify(
        "ssh-ed25519 \(Self.key)")
    else {
      Issue.record("an unknown host was not refused under strict checking")
      return
    }
    #expect(unknown.contains("No ssh-ed25519 host key is known for [10.1.2.3]:2223"))
    // Revoked.
    try "@revoked * ssh-ed25519 \(Self.key)\n".write(toFile: file, atomically: true, encoding: .utf8)
    guard case .hostKey(let revoked)? = check(.strict(files: [file])).verify("ssh-ed25519 \(Self.key)") else {
      Issue.record("a revoked key was accepted")
      return
    }
    #expect(revoked.contains("@revoked"))
  }

  @Test func onlyAnSSHConfigThatChangesNothingAllowsTheBuiltinClient() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let system = dir + "/ssh_config"
    try FileManager.default.createDirectory(atPath: dir + "/ssh_config.d", withIntermediateDirectories: true)
    // Debian's own ssh_config.
    try """
    # comment
    Include \(dir)/ssh_config.d/*.conf
    Host *
        SendEnv LANG LC_*
        HashKnownHosts yes
        GSSAPIAuthentication yes
    """.write(toFile: system, atomically: true, encoding: .utf8)
    var result = SSHConfigCheck.check(
      userConfig: dir + "/none", userBase: dir + "/.ssh", systemConfig: system)
    #expect(result.needsOpenSSH == nil)
    #expect(result.sendEnv == ["LANG", "LC_*"])
    #expect(
      result.environment(["LANG": "C.UTF-8", "LC_ALL": "C", "HOME": "/root", "LCX": "no"]).map {
        "\($0)=\($1)"
      }
        == ["LANG=C.UTF-8", "LC_ALL=C"])
    // An included file that sets a connection option: OpenSSH, naming the file and line.
    try "# bastion\nHost web-*\n  ProxyJump=bastion\n".write(
      toFile: dir + "/ssh_config.d/jump.conf", atomically: true, encoding: .utf8)
    result = SSHConfigCheck.check(userConfig: dir + "/none", userBase: dir + "/.ssh", systemConfig: system)
    #expect(result.needsOpenSSH == "\(dir)/ssh_config.d/jump.conf:3 sets ProxyJump")
    // The user's file, with an Include that includes itself: bounded.
    let user = dir + "/user_config"
    try "Include \(user)\nHost *\n  HashKnownHosts no\n".write(
      toFile: user, atomically: true, encoding: .utf8)
    result = SSHConfigCheck.check(userConfig: user, userBase: dir, systemConfig: dir + "/none")
    #expect(result.needsOpenSSH?.contains("too many included files") == true, "\(String(describing: result))")
    // A Port in the user's file.
    try "Host *\n  Port 2200\n".write(toFile: user, atomically: true, encoding: .utf8)
    result = SSHConfigCheck.check(userConfig: user, userBase: dir, systemConfig: system)
    #expect(result.needsOpenSSH == "\(user):2 sets Port")
    #expect(SSHConfigCheck.words(Array("  SendEnv=\"A B\" C".utf8)) == ["SendEnv", "A B", "C"])
  }
}
