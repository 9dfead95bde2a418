import Foundation

/// Watches for the control sockets of masters still authenticating (ssh links a master's socket
/// into place once it has authenticated): told by inotify when a file appears in the run
/// directory, and polling as well while there are any, every 250 ms (every 5 ms without inotify).
/// Reports the hosts whose sockets appeared, on its own queue.
// Sendable: `pending`, `timer`, `notifier`, `notifierTried` and `notifiedPollInterval` are behind `lock`.
final class ControlSocketWatcher: @unchecked Sendable {
  let directory: String
  let queue = DispatchQueue(label: "sixty.ssh.watch")
  private let onReady: @Sendable ([String]) -> Void
  private let lock = NSLock()
  /// The socket path to wait for, by host.
  private var pending: [String: String] = [:]
  private var timer: DispatchSourceTimer?
  /// inotify on the directory; nil where it cannot be had.
  private var notifier: DispatchSourceRead?
  private var notifierTried = false
  private var pollInterval = 250

  /// The poll interval alongside inotify, in milliseconds (tests lengthen it to see inotify work).
  var notifiedPollInterval: Int {
    get { lock.withLock { pollInterval } }
    set { lock.withLock { pollInterval = newValue } }
  }

  init(directory: String, onReady: @escaping @Sendable ([String]) -> Void) {
    self.directory = directory
    self.onReady = onReady
  }

  /// Starts inotify on the directory, once: called before the first master starts, so that no
  /// socket can appear unseen.
  func prepare() {
    let source: DispatchSourceRead? = lock.withLock {
      guard !notifierTried else { return nil }
      notifierTried = true
      notifier = makeNotifier()
      return notifier
    }
    source?.resume()
  }

  /// Waits for `socket`, the control socket of `host`'s master.
  func watch(host: String, socket: String) {
    let timer: DispatchSourceTimer? = lock.withLock {
      pending[host] = socket
      guard self.timer == nil else { return nil }
      let interval = notifier == nil ? 5 : pollInterval
      let timer = DispatchSource.makeTimerSource(queue: queue)
      timer.schedule(
        deadline: .now() + .milliseconds(interval), repeating: .milliseconds(interval),
        leeway: .milliseconds(max(2, interval / 10)))
      timer.setEventHandler { [weak self] in self?.check() }
      self.timer = timer
      return timer
    }
    timer?.resume()
  }

  /// Stops waiting for `host`'s socket.
  func unwatch(host: String) { lock.withLock { _ = pending.removeValue(forKey: host) } }

  /// Stops waiting for any socket, and stops inotify.
  func stop() {
    lock.withLock {
      pending.removeAll()
      notifier?.cancel()
      notifier = nil
    }
  }

  /// Checks the sockets being waited for (only those with one of `names`, when given).
  func check(named names: Set<String>? = nil) {
    if let names, names.isEmpty { return }
    let paths = names.map { Set($0.map { directory + "/" + $0 }) }
    var info = stat()
    let ready: [String] = lock.withLock {
      var ready: [String] = []
      for (host, socket) in pending {
        if let paths, !paths.contains(socket) { continue }
        if lstat(socket, &info) == 0 { ready.append(host) }
      }
      for host in ready { pending.removeValue(forKey: host) }
      if pending.isEmpty {
        timer?.cancel()
        timer = nil
      }
      return ready
    }
    if !ready.isEmpty { onReady(ready) }
  }

  /// The names in a buffer of `struct inotify_event`s (wd, mask, cookie, len: 4 bytes each, in
  /// the machine's order, little-endian on Linux's platforms; then len bytes of NUL-padded name);
  /// nil when the kernel's queue overflowed (events were lost: check every socket).
  static func names(inEvents buffer: [UInt8], count: Int) -> Set<String>? {
    var names: Set<String>? = []
    var offset = 0
    while offset + 16 <= count {
      func field(_ at: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(buffer[offset + at + $1]) << (8 * $1) }
      }
      let mask = field(4)
      let length = Int(field(12))
      if mask & overflowMask != 0 { names = nil }
      let name = buffer[(offset + 16)..<min(count, offset + 16 + length)].prefix { $0 != 0 }
      if !name.isEmpty { names?.insert(String(decoding: name, as: UTF8.self)) }
      offset += 16 + length
    }
    return names
  }

  /// IN_Q_OVERFLOW.
  static let overflowMask: UInt32 = 0x4000

  /// inotify on the directory, read on `queue`: each batch of new names is checked against the
  /// sockets being waited for.
  private func makeNotifier() -> DispatchSourceRead? {
    #if os(Linux)
      let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
      guard fd >= 0 else { return nil }
      guard inotify_add_watch(fd, directory, UInt32(IN_CREATE | IN_MOVED_TO)) >= 0 else {
        close(fd)
        return nil
      }
      let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
      source.setEventHandler { [weak self] in
        var names: Set<String>? = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
          let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
          if count <= 0 { break }
          if let batch = Self.names(inEvents: buffer, count: count) {
            names?.formUnion(batch)
          } else {
            names = nil
          }
        }
        self?.check(named: names)
      }
      source.setCancelHandler { close(fd) }
      return source
    #else
      return nil
    #endif
  }
}
