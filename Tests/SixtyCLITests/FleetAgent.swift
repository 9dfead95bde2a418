import Foundation

/// The local fleet's own copy of `sixty-agent`, where sshd's AuthorizedKeysCommandUser can run it.
///
/// As root, sshd runs the agent as `nobody`, who cannot enter a build under a private directory
/// (a clone in root's 0700 home: every login would fail with "Permission denied (publickey)" and
/// sshd would log `exec: …/sixty-agent: Permission denied`). So each fleet copies the agent into
/// a directory of its own under /run (else /var/lib): root-owned and 0755 all the way up, as sshd
/// requires of an AuthorizedKeysCommand, with the hosts' agent configurations beside it (owned by
/// the agent's user, 0600). `remove()` deletes it when the fleet stops.
struct FleetAgent {
  /// The fleet's directory of the agent and its configurations.
  let directory: String
  /// What sshd runs.
  var path: String { directory + "/sixty-agent" }

  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  /// Copies `agent` into a new root-owned 0755 directory under the first of `bases` that sshd and
  /// `user` can use, and checks that `user` can run the copy.
  /// - Throws: `Failure` naming, in one sentence, what blocks every base, or why the copy fails.
  static func install(from agent: String, user: String, bases: [String] = ["/run", "/var/lib"]) throws
    -> FleetAgent
  {
    var refusals: [String] = []
    for base in bases {
      if let problem = problem(running: base, as: user, asCommand: true, directory: true) {
        refusals.append(problem)
        continue
      }
      var template = Array((base + "/sixty-fleet-XXXXXX").utf8CString)
      guard let made = mkdtemp(&template) else {
        refusals.append("cannot make a directory in \(base): \(String(cString: strerror(errno))).")
        continue
      }
      let fleetAgent = FleetAgent(directory: String(cString: made))
      chmod(fleetAgent.directory, 0o755)
      do {
        try Self.copyExecutable(agent, to: fleetAgent.path)
        if let problem = problem(running: fleetAgent.path, as: user, asCommand: true) {
          throw Failure(description: problem)
        }
        return fleetAgent
      } catch {
        fleetAgent.remove()
        throw Failure(description: "cannot install the fleet's sixty-agent in \(base): \(error)")
      }
    }
    throw Failure(description: "no place for the fleet's sixty-agent: " + refusals.joined(separator: " "))
  }

  /// Copies `source` to `destination` through a temporary name opened with O_CLOEXEC, renamed
  /// into place once closed: a child that another test spawns meanwhile must not inherit a
  /// descriptor open for writing, or every exec of the agent fails with ETXTBSY while it lives.
  static func copyExecutable(_ source: String, to destination: String) throws {
    let input = open(source, O_RDONLY | O_CLOEXEC)
    guard input >= 0 else {
      throw Failure(description: "cannot read \(source): \(String(cString: strerror(errno)))")
    }
    defer { close(input) }
    let temporary = destination + ".partial"
    let output = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o755)
    guard output >= 0 else {
      throw Failure(description: "cannot create \(temporary): \(String(cString: strerror(errno)))")
    }
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      let count = read(input, &buffer, buffer.count)
      if count < 0 && errno == EINTR { continue }
      guard count >= 0 else {
        close(output)
        throw Failure(description: "cannot read \(source): \(String(cString: strerror(errno)))")
      }
      if count == 0 { break }
      var offset = 0
      while offset < count {
        let written = buffer[offset..<count].withUnsafeBytes { write(output, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else {
          close(output)
          throw Failure(description: "cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        offset += written
      }
    }
    fchmod(output, 0o755)
    close(output)
    guard rename(temporary, destination) == 0 else {
      throw Failure(description: "cannot rename \(temporary): \(String(cString: strerror(errno)))")
    }
  }

  /// A host's agent configuration, owned by `user` and 0600 (its token is inline).
  func writeConfiguration(_ text: String, name: String, user: String) throws -> String {
    let file = directory + "/" + name + ".yml"
    let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw Failure(description: "cannot create \(file): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    guard write(fd, bytes, bytes.count) == bytes.count else {
      throw Failure(description: "cannot write \(file): \(String(cString: strerror(errno)))")
    }
    if getuid() == 0, let entry = getpwnam(user) { fchown(fd, entry.pointee.pw_uid, entry.pointee.pw_gid) }
    return file
  }

  func remove() { try? FileManager.default.removeItem(atPath: directory) }

  /// Why `user` cannot run `path` (or, with `directory`, enter it) the way sshd runs an
  /// AuthorizedKeysCommand, as one sentence naming the directory or file that blocks it; nil when
  /// nothing does. With `asCommand`, sshd's own rule applies too: the file and every directory
  /// above it owned by root and writable by neither group nor others.
  static func problem(running path: String, as user: String, asCommand: Bool, directory: Bool = false)
    -> String?
  {
    guard let entry = getpwnam(user) else { return "there is no user \(user) to run sixty-agent as." }
    let uid = entry.pointee.pw_uid
    let gid = entry.pointee.pw_gid
    var count: Int32 = 64
    var groups = [gid_t](repeating: 0, count: 64)
    if getgrouplist(user, gid, &groups, &count) < 0 { count = 0 }
    let memberOf = Set(groups.prefix(Int(max(count, 0)))).union([gid])

    var prefixes = ["/"]
    var current = ""
    for component in path.split(separator: "/") {
      current += "/" + component
      prefixes.append(current)
    }
    for (index, prefix) in prefixes.enumerated() {
      var info = stat()
      guard stat(prefix, &info) == 0 else { return "\(prefix) does not exist." }
      let mode = info.st_mode & 0o7777
      let owner = getpwuid(info.st_uid).map { String(cString: $0.pointee.pw_name) } ?? String(info.st_uid)
      let described = "\(prefix) (mode \(String(mode, radix: 8)), owner \(owner))"
      if asCommand && (info.st_uid != 0 || mode & 0o022 != 0) {
        return "sshd refuses an AuthorizedKeysCommand under \(described): it must be owned by root and "
          + "writable by neither group nor others all the way up."
      }
      let isLast = index == prefixes.count - 1
      let bits: mode_t =
        uid == 0 ? 0o111 : info.st_uid == uid ? 0o100 : memberOf.contains(info.st_gid) ? 0o010 : 0o001
      if mode & bits == 0 {
        let what = isLast && !directory ? "execute" : "enter"
        return "sshd runs sixty-agent as \(user), who cannot \(what) \(described)."
      }
    }
    // ST_NOEXEC of <sys/statvfs.h>, which Glibc's Swift module leaves out (it is a GNU extension).
    let noExec: UInt = 8
    var filesystem = statvfs()
    if statvfs(path, &filesystem) == 0, filesystem.f_flag & noExec != 0 {
      return "\(path) is on a file system mounted noexec, where sshd cannot run sixty-agent."
    }
    return nil
  }
}
