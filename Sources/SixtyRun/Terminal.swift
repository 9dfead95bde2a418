import Foundation
import SixtyScheduler

/// Serialises output lines from many threads; on a terminal, keeps the status line below them.
// @unchecked: `status`, the only mutable state, is behind `lock`.
final class LinePrinter: @unchecked Sendable {
  let lock = NSLock()
  var status: String?

  func write(_ text: String) {
    lock.withLock {
      if let status {
        writeStandardOutput(Array(("\r\u{1B}[K" + text + status).utf8))
      } else {
        writeStandardOutput(Array(text.utf8))
      }
    }
  }

  func line(_ text: String) { write(text + "\n") }

  /// Replaces the status line that the next write shows, without writing.
  func replaceStatus(_ text: String) { lock.withLock { if status != nil { status = text } } }

  func setStatus(_ text: String?) {
    lock.withLock {
      status = text
      writeStandardOutput(Array(("\r\u{1B}[K" + (text ?? "")).utf8))
    }
  }
}

/// Hosts done, failed and running, the task each is on, and the time elapsed; redrawn twice a
/// second by a dispatch timer.
// @unchecked: everything mutable is behind `lock`.
final class ProgressBoard: @unchecked Sendable {
  let printer: LinePrinter
  // `lock` protects everything below.
  let lock = NSLock()
  var play = ""
  var total = 0
  var done = 0
  var failed = 0
  var current: [String: String] = [:]
  var start = Date()
  var timer: DispatchSourceTimer?

  init(printer: LinePrinter) { self.printer = printer }

  func begin(play: String, hosts: Int) {
    lock.withLock {
      self.play = play
      total = hosts
      done = 0
      failed = 0
      current = [:]
      if timer == nil {
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now(), repeating: .milliseconds(500))
        timer.setEventHandler { [weak self] in self?.draw() }
        timer.resume()
        self.timer = timer
      }
    }
  }

  func handle(_ event: SchedulerEvent) {
    lock.withLock {
      switch event {
      case .push(let host): current[host] = "pushing key"
      case .connect(let host): current[host] = "connecting"
      case .authenticated(let host): current[host] = "connected"
      case .start(let host, let task): current[host] = task
      case .end(let host, let status):
        current[host] = nil
        done += 1
        if status != .ok { failed += 1 }
      case .pushAhead, .reconnect, .retry: break
      }
    }
    // The lines printed for this event show the counts it changed.
    printer.replaceStatus(lock.withLock { statusText() })
  }

  func draw() {
    printer.setStatus(lock.withLock { statusText() })
  }

  /// The status line; called with `lock` held.
  func statusText() -> String {
    let elapsed = Int(Date().timeIntervalSince(start))
    let running = current.sorted { $0.key < $1.key }.prefix(3).map { "\($0.key) (\($0.value))" }
    var line = String(
      format: "[%d:%02d] %@: %d/%d done, %d failed, %d running", elapsed / 60, elapsed % 60, play, done,
      total, failed, current.count)
    if !running.isEmpty {
      line += ": " + running.joined(separator: ", ") + (current.count > 3 ? ", …" : "")
    }
    let width = 160
    return line.count > width ? String(line.prefix(width - 1)) + "…" : line
  }

  func stop() {
    lock.withLock {
      timer?.cancel()
      timer = nil
    }
    printer.setStatus(nil)
  }
}

/// Writes bytes to standard output in large chunks.
public func writeStandardOutput(_ bytes: [UInt8]) {
  bytes.withUnsafeBytes { buffer in
    var offset = 0
    while offset < buffer.count {
      let written = write(1, buffer.baseAddress! + offset, buffer.count - offset)
      if written <= 0 {
        if written < 0 && errno == EINTR { continue }
        return
      }
      offset += written
    }
  }
}
