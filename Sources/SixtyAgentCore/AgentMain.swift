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
  /// One try at one broker.
  public struct Attempt {
    /// The key-list URL at this broker.
    public var url: URL
    /// The bearer token.
    public var token: String
    /// Seconds this attempt may take (its share of what is left of the timeout).
    public var timeout: Double
    /// For a program that hands the fetch over to another by exec (`sixty-agent` to
    /// `sixty-agent-tls` for an https broker): the arguments that make it go on from this broker
    /// within the same overall deadline.
    public var handoff: [String]
  }

  /// Fetches one key list: the HTTP status and body. A thrown `PlainHTTP.Failure` with
  /// `isTimeout` means the attempt's time ran out.
  public typealias Fetch = (_ attempt: Attempt) throws -> (status: Int, body: [UInt8])

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

  /// Where a handed-over fetch goes on: `--handoff INDEX@DEADLINE`, the deadline in milliseconds
  /// of CLOCK_MONOTONIC (the same clock in both programs).
  static func parseHandoff(_ text: String) -> (index: Int, deadline: Double)? {
    let parts = Array(text.utf8).split(separator: UInt8(ascii: "@"), omittingEmptySubsequences: false)
    guard parts.count == 2, let index = PlainHTTP.decimal(parts[0], limit: AgentConfig.maxBrokers),
      let milliseconds = PlainHTTP.decimal(parts[1], limit: Int(Int32.max) * 1000)
    else { return nil }
    return (index, Double(milliseconds) / 1000)
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
    var handoff: (index: Int, deadline: Double)?
    if let index = arguments.firstIndex(of: "--handoff") {
      guard index + 1 < arguments.count, let parsed = parseHandoff(arguments[index + 1]) else {
        fail("--handoff needs INDEX@DEADLINE (what sixty-agent passes to sixty-agent-tls).", code: 2)
      }
      handoff = parsed
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

    // The hard deadline for everything: if the brokers are slow we let nobody in rather than
    // hold up sshd. A handed-over fetch keeps the deadline it began with (never a later one).
    let started = PlainHTTP.now()
    let end = min(handoff?.deadline ?? .infinity, started + config.timeout)
    let first = handoff?.index ?? 0
    guard first < config.brokers.count else {
      fail(
        "--handoff names broker \(first + 1), but the configuration lists \(config.brokers.count).", code: 2)
    }
    let single = config.brokers.count == 1
    let timeout = config.timeout
    DispatchQueue.global().asyncAfter(deadline: .now() + max(0, end - started)) {
      if !printing.load(ordering: .acquiring) {
        fail(
          single
            ? "the broker did not answer within \(timeout) s; printing no keys."
            : "no broker gave a valid key list within \(timeout) s; printing no keys.")
      }
    }

    // The brokers in order. Each attempt gets an equal share of what is left (left / brokers
    // left): a broker that refuses at once leaves its share to the next, one that hangs is cut
    // off at its share. Moved past: no connection, a timeout, HTTP 5xx (or any other answer but
    // 200 and 4xx), and a list that does not verify. A 4xx answer is a refusal every replica
    // gives alike (a wrong token, an unknown instance, a rate limit): it ends the fetch.
    // Those before a hand-over failed in sixty-agent, which logged why.
    var failures = config.brokers[..<first].map { "\($0.absoluteString): failed (logged above)" }
    for index in first..<config.brokers.count {
      let broker = config.brokers[index]
      let name = broker.absoluteString
      let left = end - PlainHTTP.now()
      guard left > 0 else {
        if single { fail("the broker did not answer within \(timeout) s; printing no keys.") }
        failures.append("\(name): not tried (the timeout was spent)")
        continue
      }
      let share = left / Double(config.brokers.count - index)
      let reason: String
      if let url = config.keysURL(user: user, broker: broker) {
        var handoffArguments = arguments
        handoffArguments += [
          "--config", configPath, "--handoff", "\(index)@\(Int64((end * 1000).rounded(.down)))",
        ]
        let attempt = Attempt(url: url, token: config.token, timeout: share, handoff: handoffArguments)
        reason = tryBroker(
          attempt, fetch: fetch, config: config, user: user, fingerprint: fingerprint, single: single)
      } else {
        reason = "cannot build the broker URL for user \(user)"
        if single { fail("cannot build the broker URL for user \(user).") }
      }
      failures.append("\(name): \(reason)")
      if index + 1 < config.brokers.count {
        log(
          "broker \(index + 1) of \(config.brokers.count) (\(name)) failed: \(reason); trying the next.",
          priority: LOG_WARNING)
      }
    }
    fail(
      "none of the \(config.brokers.count) brokers gave a valid key list (\(failures.concatenated(separator: "; "))); printing no keys."
    )
  }

  /// One broker: prints the keys and exits when its list verifies; ends the fetch on a 4xx
  /// answer (and on any failure when it is the only broker, with the message of old); else
  /// returns why it failed, briefly.
  static func tryBroker(
    _ attempt: Attempt, fetch: Fetch, config: AgentConfig, user: String, fingerprint: String?, single: Bool
  ) -> String {
    let answer: (status: Int, body: [UInt8])
    do {
      answer = try fetch(attempt)
    } catch let failure as PlainHTTP.Failure where failure.isTimeout {
      if single { fail("the broker did not answer within \(config.timeout) s; printing no keys.") }
      return "no answer within its \(formatSeconds(attempt.timeout)) s share of the timeout"
    } catch {
      if single { fail("cannot reach the broker at \(config.broker.absoluteString): \(error).") }
      return "cannot reach it: \(error)"
    }
    let body = Data(answer.body)
    guard answer.status == 200 else {
      let text = String(decoding: body.prefix(200), as: UTF8.self).trimmingSpace(newlines: true)
      let refusal = "the broker refused the key-list request (HTTP \(answer.status): \(text))"
      if single || (400..<500).contains(answer.status) {
        fail(single ? "\(refusal)." : "\(attempt.url.host ?? "a broker"): \(refusal); printing no keys.")
      }
      return "HTTP \(answer.status): \(text)"
    }
    let now = Date()
    let list: SignedKeyList
    do {
      list = try SignedKeyList.verify(
        body, publicKey: config.brokerPublicKey, instanceID: config.instanceID, osUser: user, now: now,
        maxAge: config.maxAge)
    } catch {
      if single { fail("rejected the broker's answer: \(error.description).") }
      return "rejected its answer: \(error.description)"
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

  /// Seconds with two decimals, without `String(format:)` (not in FoundationEssentials).
  static func formatSeconds(_ seconds: Double) -> String {
    let hundredths = Int((seconds * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
  }
}
