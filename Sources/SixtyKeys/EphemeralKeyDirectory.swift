import Foundation

/// A fresh 0700 directory holding one run's private keys (0600), wiped when done.
///
/// `wipe()` overwrites every private key file with zeros, syncs, unlinks every file and removes
/// the directory. It runs from `deinit` as well, and from `KeyWipeRegistry`'s signal handlers on
/// SIGINT/SIGTERM.
/// A `pid` file lets a later run sweep directories left behind by a killed process.
// Sendable: the paths are constants and `wiped`, the only mutable state, is behind `lock`.
public final class EphemeralKeyDirectory: @unchecked Sendable {
  public let path: String
  public let privateKeyPath: String
  public let publicKeyPath: String
  // `lock` protects `wiped`.
  private let lock = NSLock()
  private var wiped = false

  public static let prefix = "sixty-run-"

  /// Where key directories go unless told: `$TMPDIR` when it is set; otherwise /dev/shm when it
  /// is a memory file system (tmpfs) this user can write, so that private keys never reach a
  /// disk, and the run's control sockets and ssh logs (one each per host) cost no disk inodes;
  /// otherwise /tmp.
  public static func defaultParent() -> String {
    if let value = getenv("TMPDIR"), value.pointee != 0 { return String(cString: value) }
    #if os(Linux)
      let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
      let memoryBacked = mounts.split(separator: "\n").contains { line in
        let fields = line.split(separator: " ")
        return fields.count > 2 && fields[1] == "/dev/shm" && fields[2] == "tmpfs"
      }
      if memoryBacked && access("/dev/shm", W_OK | X_OK) == 0 { return "/dev/shm" }
    #endif
    return "/tmp"
  }

  /// Creates the directory under `parent` (default: `defaultParent()`) and writes `key` into it,
  /// with its public key beside it as `NAME.pub`, as ssh-keygen would.
  /// - Throws: `KeyError.io` when the directory or files cannot be created with safe permissions.
  public convenience init(key: SSHKeyPair, parent: String? = nil) throws {
    try self.init(keys: [key], parent: parent, publicKeyFiles: true)
  }

  /// Creates the directory and writes each key (one of each type) as ssh-keygen names it. Without
  /// `publicKeyFiles`, no `.pub` is written: ssh then signs with an RSA key (a PEM file) at once
  /// instead of first asking the server about it. `privateKeyPath` is the first key's.
  public init(keys: [SSHKeyPair], parent: String? = nil, publicKeyFiles: Bool) throws {
    precondition(!keys.isEmpty, "a key directory holds at least one key")
    CoreDumps.disable()
    let base = parent ?? EphemeralKeyDirectory.defaultParent()
    var template = Array("\(base)/\(EphemeralKeyDirectory.prefix)XXXXXX".utf8CString)
    guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
      throw KeyError.io(
        "cannot create a private key directory under \(base): \(String(cString: strerror(errno))).")
    }
    path = String(cString: created)
    chmod(path, 0o700)
    privateKeyPath = path + "/" + keys[0].type.fileName
    publicKeyPath = privateKeyPath + ".pub"
    KeyWipeRegistry.shared.register(self)
    do {
      try EphemeralKeyDirectory.write(Array("\(getpid())\n".utf8), to: path + "/pid", mode: 0o600)
      for key in keys {
        let keyPath = path + "/" + key.type.fileName
        var file = try key.sshPrivateKeyFile()
        defer { file.withUnsafeMutableBufferPointer { $0.initialize(repeating: 0) } }
        try EphemeralKeyDirectory.write(file, to: keyPath, mode: 0o600)
        if publicKeyFiles {
          try EphemeralKeyDirectory.write(
            Array((key.publicKeyLine + "\n").utf8), to: keyPath + ".pub", mode: 0o644)
        }
      }
    } catch {
      wipe()
      throw error
    }
  }

  deinit { wipe() }

  /// Where the key of `type` is (written by `init` if it was among its keys).
  public func privateKeyPath(for type: KeyType) -> String { path + "/" + type.fileName }

  static func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
    // O_EXCL: never reuse a file someone else created; the mode is set at creation.
    let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode)
    guard fd >= 0 else { throw KeyError.io("cannot create \(path): \(String(cString: strerror(errno))).") }
    defer { close(fd) }
    fchmod(fd, mode)  // umask must not widen or narrow what we meant
    let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
    guard written == bytes.count else {
      throw KeyError.io("cannot write \(path): \(String(cString: strerror(errno))).")
    }
    fsync(fd)
  }

  /// Leaves the directory in place when this object goes away (for `sixty push --generate`,
  /// whose user takes the key over). Signal handlers no longer wipe it either.
  public func keep() {
    lock.withLock { wiped = true }
    KeyWipeRegistry.shared.unregister(self)
  }

  /// Overwrites, unlinks and removes everything; safe to call more than once and from any thread.
  public func wipe() {
    let first = lock.withLock {
      defer { wiped = true }
      return !wiped
    }
    guard first else { return }
    EphemeralKeyDirectory.wipe(directory: path)
    KeyWipeRegistry.shared.unregister(self)
  }

  /// Whether a file of a key directory holds a private key (one of `KeyType.fileName`): the
  /// files `wipe` overwrites with zeros and flushes before unlinking.
  static func holdsPrivateKey(_ name: String) -> Bool { KeyType.allCases.contains { $0.fileName == name } }

  /// Zeroes (and flushes) every private key file in `directory`, removes every file, then the
  /// directory itself. The rest (public keys, ssh logs, known_hosts, control sockets, the pid
  /// file) holds no secret and is only removed: a run's directory holds an ssh log per host, and
  /// a flush each cost 200 fsyncs at the end of a 200-host run.
  static func wipe(directory: String) {
    if let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) {
      for entry in entries {
        let file = directory + "/" + entry
        var info = stat()
        guard lstat(file, &info) == 0 else { continue }
        if info.st_mode & S_IFMT == S_IFREG && holdsPrivateKey(entry) {
          let fd = open(file, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
          if fd >= 0 {
            let zeros = [UInt8](repeating: 0, count: Int(info.st_size))
            _ = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            fsync(fd)
            close(fd)
          }
        }
        unlink(file)
      }
    }
    rmdir(directory)
  }

  /// Removes `sixty-run-*` directories under `parent` (by default `defaultParent()` and /tmp)
  /// that the current user owns and whose creating process is gone (a run killed with SIGKILL).
  /// Returns the paths removed.
  @discardableResult
  public static func sweepStale(parent: String? = nil) -> [String] {
    // Without a parent: the default one, and /tmp, where key directories went by default before.
    if let parent { return sweepStale(in: parent) }
    let preferred = defaultParent()
    return sweepStale(in: preferred) + (preferred == "/tmp" ? [] : sweepStale(in: "/tmp"))
  }

  private static func sweepStale(in base: String) -> [String] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: base) else { return [] }
    var removed: [String] = []
    for entry in entries where entry.hasPrefix(prefix) {
      let dir = base + "/" + entry
      var info = stat()
      guard lstat(dir, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == getuid() else {
        continue
      }
      let pidText = (try? String(contentsOfFile: dir + "/pid", encoding: .utf8))?.trimmingCharacters(
        in: .whitespacesAndNewlines)
      if let pidText, let pid = Int32(pidText), pid > 0, kill(pid, 0) == 0 || errno == EPERM { continue }
      wipe(directory: dir)
      removed.append(dir)
    }
    return removed
  }
}

/// Keeps core dumps off while key material is in memory.
public enum CoreDumps {
  public static func disable() {
    var limit = rlimit(rlim_cur: 0, rlim_max: 0)
    setrlimit(Int32(RLIMIT_CORE.rawValue), &limit)
  }
}

/// Every live key directory, so a signal handler can wipe them all before the process exits.
// Sendable: `directories`, the only mutable state, is behind `lock`.
public final class KeyWipeRegistry: @unchecked Sendable {
  public static let shared = KeyWipeRegistry()
  // `lock` protects `directories`.
  private let lock = NSLock()
  // Weak, so a directory that goes out of scope is still wiped by its deinit.
  private var directories: [ObjectIdentifier: WeakDirectory] = [:]

  struct WeakDirectory {
    weak var directory: EphemeralKeyDirectory?
    let path: String
  }

  func register(_ directory: EphemeralKeyDirectory) {
    lock.withLock {
      directories[ObjectIdentifier(directory)] = WeakDirectory(directory: directory, path: directory.path)
    }
  }

  func unregister(_ directory: EphemeralKeyDirectory) {
    lock.withLock { _ = directories.removeValue(forKey: ObjectIdentifier(directory)) }
  }

  /// Wipes every live directory.
  public func wipeAll() {
    let all = lock.withLock { Array(directories.values) }
    for entry in all {
      if let directory = entry.directory {
        directory.wipe()
      } else {
        EphemeralKeyDirectory.wipe(directory: entry.path)
      }
    }
  }

}
