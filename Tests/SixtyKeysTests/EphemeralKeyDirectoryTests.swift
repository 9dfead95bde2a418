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

  /// Private keys are zeroed before they are unlinked; the rest of a run's directory (an ssh log
  /// per host, known_hosts, sockets) holds no secret and is only removed.
  @Test func wipeZeroesEveryPrivateKeyAndRemovesEverything() throws {
    let parent = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: parent) }
    let keys = [try SSHKeyPair.generate(.rsa2048), try SSHKeyPair.generate(.ed25519)]
    let dir = try EphemeralKeyDirectory(keys: keys, parent: parent, publicKeyFiles: false)
    try "Authenticated to 127.0.0.1\n".write(
      toFile: dir.path + "/ssh0.log", atomically: false, encoding: .utf8)
    var witnesses: [(String, Data)] = []
    for name in ["id_rsa", "id_ed25519", "ssh0.log"] {
      let witness = parent + "/witness-" + name
      #expect(link(dir.path + "/" + name, witness) == 0)
      witnesses.append((name, try Data(contentsOf: URL(fileURLWithPath: witness))))
    }
    dir.wipe()
    #expect(!FileManager.default.fileExists(atPath: dir.path))
    for (name, before) in witnesses {
      let after = try Data(contentsOf: URL(fileURLWithPath: parent + "/witness-" + name))
      #expect(after.count == before.count, "\(name)")
      #expect(after.allSatisfy { $0 == 0 } == (name != "ssh0.log"), "\(name)")
    }
  }

  /// Without a parent, keys go to $TMPDIR when it is set, else to /dev/shm when that is a
  /// tmpfs (memory: the key never reaches a disk), else /tmp.
  @Test func theDefaultParentIsInMemoryWhereItCanBe() throws {
    let parent = EphemeralKeyDirectory.defaultParent()
    let mounts = try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)
    let shmIsTmpfs = mounts.split(separator: "\n").contains { $0.hasPrefix("tmpfs /dev/shm tmpfs ") }
    if let tmpdir = ProcessInfo.processInfo.environment["TMPDIR"], !tmpdir.isEmpty {
      #expect(parent == tmpdir)
      return
    }
    #expect(parent == (shmIsTmpfs ? "/dev/shm" : "/tmp"))
    let dir = try EphemeralKeyDirectory(key: try SSHKeyPair.generate())
    defer { dir.wipe() }
    #expect(dir.path.hasPrefix(parent + "/" + EphemeralKeyDirectory.prefix))
    if shmIsTmpfs {
      // The key file's device is the tmpfs's, not the disk's.
      var key = stat()
      var shm = stat()
      #expect(stat(dir.privateKeyPath, &key) == 0 && stat("/dev/shm", &shm) == 0)
      #expect(key.st_dev == shm.st_dev)
    }
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

  /// Without a parent, the sweep looks in /tmp as well, where key directories went by default
  /// before they went to /dev/shm: a killed run's keys there are not left behind.
  @Test func theDefaultSweepAlsoCoversTmp() throws {
    let child = try runTool("/bin/sh", ["-c", "echo $$"])
    let deadPID = child.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    let stale = "/tmp/\(EphemeralKeyDirectory.prefix)stale-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: stale) }
    try "\(deadPID)\n".write(toFile: stale + "/pid", atomically: false, encoding: .utf8)
    try "secret".write(toFile: stale + "/id_rsa", atomically: false, encoding: .utf8)
    let removed = EphemeralKeyDirectory.sweepStale()
    #expect(removed.contains(stale))
    #expect(!FileManager.default.fileExists(atPath: stale))
  }

  @Test func coreDumpsAreOffWhileKeysExist() throws {
    let dir = try EphemeralKeyDirectory(key: try SSHKeyPair.generate())
    defer { dir.wipe() }
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_CORE.rawValue), &limit)
    #expect(limit.rlim_cur == 0)
  }
}
