import Foundation
import SixtyKeys
import Testing

@Suite struct EphemeralKeyDirectoryTests {
  @Test func permissionsAndWipe() throws {
    let parent = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: parent) }
    let key = try SSHKeyPair.generate()
    let dir = try EphemeralKeyDirectory(key: key, parent: parent)
    var info = stat()
    #expect(stat(dir.path, &info) == 0)
    #expect(info.st_mode & 0o777 == 0o700)
    #expect(stat(dir.privateKeyPath, &info) == 0)
    #expect(info.st_mode & 0o777 == 0o600)
    // Keep a hard link to see what happens to the file's bytes when it is wiped.
    let witness = parent + "/witness"
    #expect(link(dir.privateKeyPath, witness) == 0)
    let before = try Data(contentsOf: URL(fileURLWithPath: witness))
    #expect(String(decoding: before, as: UTF8.self).hasPrefix("-----BEGIN OPENSSH PRIVATE KEY-----"))
    dir.wipe()
    dir.wipe()  // idempotent
    #expect(!FileManager.default.fileExists(atPath: dir.path))
    let after = try Data(contentsOf: URL(fileURLWithPath: witness))
    #expect(after.count == before.count)
    #expect(after.allSatisfy { $0 == 0 })
  }

  @Test func deinitWipes() throws {
    let parent = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: parent) }
    var path = ""
    do {
      let dir = try EphemeralKeyDirectory(key: try SSHKeyPair.generate(), parent: parent)
      path = dir.path
      #expect(FileManager.default.fileExists(atPath: path))
    }
    #expect(!FileManager.default.fileExists(atPath: path))
  }

  @Test func sweepRemovesOnlyDeadRunsDirectories() throws {
    let parent = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: parent) }
    let live = try EphemeralKeyDirectory(key: try SSHKeyPair.generate(), parent: parent)
    defer { live.wipe() }
    // A directory left by a process that no longer exists.
    let child = try runTool("/bin/sh", ["-c", "echo $$"])
    let deadPID = child.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    let stale = parent + "/sixty-run-stale1"
    try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: false)
    try "\(deadPID)\n".write(toFile: stale + "/pid", atomically: false, encoding: .utf8)
    try "secret".write(toFile: stale + "/id_ed25519", atomically: false, encoding: .utf8)
    let removed = EphemeralKeyDirectory.sweepStale(parent: parent)
    #expect(removed == [stale])
    #expect(!FileManager.default.fileExists(atPath: stale))
    #expect(FileManager.default.fileExists(atPath: live.privateKeyPath))
  }

  @Test func coreDumpsAreOffWhileKeysExist() throws {
    let dir = try EphemeralKeyDirectory(key: try SSHKeyPair.generate())
    defer { dir.wipe() }
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_CORE.rawValue), &limit)
    #expect(limit.rlim_cur == 0)
  }
}
