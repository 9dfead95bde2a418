import Dispatch
import Synchronization

// What `sixty-agent` and `sixty-agent-tls` run: sshd's AuthorizedKeysCommand. Prints the keys
// the broker says are valid for this host and USER right now, as `expiry-time="…Z"[,from="…"] KEY`
// lines. Fails closed: on any error it prints nothing and exits non-zero, so sshd lets nobody
// in through it. The two programs differ only in how they fetch the key list.
#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

#if canImport(Glibc)
  import Glibc
#endif

/// Set once output has begun; the watchdog then leaves the process alone.
private let printing = Atomic<Bool>(false)
private let useSyslog = Atomic<Bool>(true)

public enum AgentMain {
  /// Fetches `url` with the bearer `token` within `deadline` seconds: the HTTP status and body.
  public typealias Fetch = (_ url: URL, _ token: String, _ deadline: Double) throws -> (
    status: Int, body: [UInt8]
  )

  public static func log(_ message: String, priority: Int32) {
    writeAll(2, Array("sixty-agent: \(message)\n".utf8))
    if useSyslog.load(ordering: .relaxed) {
      message.withCString { text in
        withVaList([text]) { vsyslog(priority, "%s", $0) }
      }
    }
  }

  /// Writes all of `bytes` to `fd` (sshd reads the keys from a pipe).
  static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var sent = 0
    while sent < bytes.count {
      let n = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
      if n < 0 && errno == EINTR { continue }
      if n <= 0 { return }
      sent += n
    }
  }

  public static func fail(_ message: String, code: Int32 = 1) -> Never {
    log(message, priority: LOG_ERR)
    exit(code)
  }

  public static func run(fetch: Fetch) -> Never {

    var arguments = Array(CommandLine.arguments.dropFirst())
    // getenv, not ProcessInfo's environment, which builds a dictionary of every variable.
    var configPath = getenv("SIXTY_AGENT_CONFIG").map { String(cString: $0) } ?? AgentConfig.defaultPath
    if let index = arguments.firstIndex(of: "--config") {
      guard index + 1 < arguments.count else { fail("--config needs a file path.", code: 2) }
      configPath = arguments[index + 1]
      arguments.removeSubrange(index...(index + 1))
    }
    if arguments.first == "--help" || arguments.first == "-h" {
      print("usage: sixty-agent USER [FINGERPRINT] [--config FILE]   (sshd: AuthorizedKeysCommand … %u %f)")
      exit(0)
    }
    openlog("sixty-agent", LOG_PID, LOG_AUTH)
    guard (1...2).contains(arguments.count) else {
      fail("expected USER and an optional FINGERPRINT (sshd: AuthorizedKeysCommand … %u %f).", code: 2)
    }
    let user = arguments[0]
    guard (1...32).contains(user.utf8.count),
      user.utf8.allSatisfy({ b in
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E
          || b == 0x5F
          || b == 0x2D || b == 0x40 || b == 0x24
      })
    else {
      fail(
        "the user name \(user.debugDescription.prefix(40)) is not a valid OS user; printing no keys.", code: 2
      )
    }
    let fingerprint = arguments.count == 2 && !arguments[1].isEmpty ? arguments[1] : nil

    let config: AgentConfig
    do {
      config = try AgentConfig.load(path: configPath)
    } catch {
      fail(error.description, code: 2)
    }
    useSyslog.store(config.syslog, ordering: .relaxed)

    // The hard deadline for everything: if the broker is slow we let nobody in rather than hold
    // up sshd.
    let deadline = config.timeout
    DispatchQueue.global().asyncAfter(deadline: .now() + deadline) {
      if !printing.load(ordering: .acquiring) {
        fail("the broker did not answer within \(deadline) s; printing no keys.")
      }
    }

    guard let url = config.keysURL(user: user) else { fail("cannot build the broker URL for user \(user).") }
    let answer: (status: Int, body: [UInt8])
    do {
      answer = try fetch(url, config.token, deadline)
    } catch let failure as PlainHTTP.Failure where failure.isTimeout {
      fail("the broker did not answer within \(deadline) s; printing no keys.")
    } catch {
      fail("cannot reach the broker at \(config.broker.absoluteString): \(error).")
    }
    let body = Data(answer.body)
    guard answer.status == 200 else {
      let text = String(decoding: body.prefix(200), as: UTF8.self).trimmingSpace(newlines: true)
      fail("the broker refused the key-list request (HTTP \(answer.status): \(text)).")
    }
    let now = Date()
    let list: SignedKeyList
    do {
      list = try SignedKeyList.verify(
        body, publicKey: config.brokerPublicKey, instanceID: config.instanceID, osUser: user, now: now,
        maxAge: config.maxAge)
    } catch {
      fail("rejected the broker's answer: \(error.description).")
    }
    let offered = list.offeredKeys(now: now, fingerprint: fingerprint)
    printing.store(true, ordering: .releasing)
    var output = offered.map(\.line).concatenated(separator: "\n")
    if !output.isEmpty { output += "\n" }
    writeAll(1, Array(output.utf8))
    // Only what was printed: an expired entry, one for another key, or one dropped as unsafe
    // (a malformed key or from= value) was never offered to sshd.
    for (entry, _) in offered {
      log(
        "offered key \(entry.fingerprint) for \(user) (request \(entry.requestID), principal \(entry.principal), expires \(SignedKeyList.expiryTime(entry.expiresAt)))",
        priority: LOG_INFO)
    }
    exit(0)
  }
}
