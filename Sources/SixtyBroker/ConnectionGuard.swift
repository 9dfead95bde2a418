import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Open connections per source address, so that one address cannot take every connection slot
/// (`max_connections`) and starve everybody else.
///
/// A source is an IPv4 address, or the /64 network of an IPv6 address (one host usually holds a
/// whole /64). Entries exist only while the source has connections open, so the table's size
/// follows the open connections, which `max_connections` bounds.
// Sendable: the limits are constants and `entries`, the only mutable state, is behind `lock`.
public final class SourceConnectionLimiter: @unchecked Sendable {
  /// What `acquire` decided.
  public enum Decision: Equatable, Sendable {
    case accepted
    /// Over the limit; `warn` is true at most once every `warningInterval` per source.
    case refused(warn: Bool)
  }

  struct Entry {
    var open: Int
    var lastWarning: NIODeadline?
  }

  public let limit: Int
  let warningInterval: TimeAmount
  // `lock` protects `entries`.
  private let lock = NSLock()
  private var entries: [String: Entry] = [:]

  public init(limit: Int, warningInterval: TimeAmount = .seconds(10)) {
    precondition(limit >= 1, "the per-source connection limit must be at least 1")
    self.limit = limit
    self.warningInterval = warningInterval
  }

  /// Counts a new connection from `source`, or refuses it when `source` already has `limit` open.
  public func acquire(_ source: String, now: NIODeadline = .now()) -> Decision {
    lock.withLock {
      var entry = entries[source] ?? Entry(open: 0, lastWarning: nil)
      guard entry.open < limit else {
        let warn = entry.lastWarning.map { now - $0 >= warningInterval } ?? true
        if warn { entry.lastWarning = now }
        entries[source] = entry
        return .refused(warn: warn)
      }
      entry.open += 1
      entries[source] = entry
      return .accepted
    }
  }

  /// Counts a connection from `source` (one that `acquire` accepted) as closed.
  public func release(_ source: String) {
    lock.withLock {
      guard var entry = entries[source] else { return }
      entry.open -= 1
      if entry.open <= 0 {
        entries[source] = nil
      } else {
        entries[source] = entry
      }
    }
  }

  /// The connections open from `source`.
  public func openConnections(_ source: String) -> Int { lock.withLock { entries[source]?.open ?? 0 } }

  /// The sources with connections open.
  public var sourceCount: Int { lock.withLock { entries.count } }

  /// The key a peer address is counted under: the IPv4 address; for IPv6 its /64 network (an
  /// IPv4-mapped address counts as the IPv4 address); nil for anything else (a Unix socket).
  public static func sourceKey(_ address: SocketAddress?) -> String? {
    switch address {
    case .v4: return address?.ipAddress
    case .v6(let v6):
      var raw = v6.address.sin6_addr
      let bytes = withUnsafeBytes(of: &raw) { Array($0) }
      if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
        return bytes[12..<16].map { String($0) }.joined(separator: ".")
      }
      var key = ""
      for index in stride(from: 0, to: 8, by: 2) {
        let group = UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1])
        key += String(group, radix: 16) + ":"
      }
      return key + ":/64"
    default: return nil
    }
  }
}

/// The first handler of every connection: refuses connections over the per-source limit, and
/// closes connections whose request head does not arrive in full within `header_timeout`.
///
/// The header deadline runs from the moment a connection is accepted, and on a kept-alive
/// connection from the first byte of the next request (the idle time between requests is
/// `idle_timeout`'s business). `BodyDeadlineHandler`, after the HTTP decoder, tells this handler
/// when a head has arrived and when a response has ended.
final class ConnectionGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer

  private let limiter: SourceConnectionLimiter
  private let headerTimeout: TimeAmount
  private let logger: Logger
  /// The source this connection is counted under, until it is released.
  private var source: String?
  private var headDeadline: Scheduled<Void>?
  /// Whether the next bytes read belong to a request head that has not arrived in full.
  private var awaitingHead = true

  init(limiter: SourceConnectionLimiter, headerTimeout: TimeAmount, logger: Logger) {
    self.limiter = limiter
    self.headerTimeout = headerTimeout
    self.logger = logger
  }

  func channelActive(context: ChannelHandlerContext) {
    let peer = context.channel.remoteAddress
    if let key = SourceConnectionLimiter.sourceKey(peer) {
      switch limiter.acquire(key) {
      case .accepted:
        source = key
      case .refused(let warn):
        if warn {
          logger.warning(
            "refusing connections from \(key): it already has \(limiter.limit) open (max_connections_per_source)"
          )
        }
        // Closed before anything is read; the handlers after this one never see it active.
        context.close(promise: nil)
        return
      }
    }
    startHeadDeadline(context)
    context.fireChannelActive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    if awaitingHead && headDeadline == nil { startHeadDeadline(context) }
    context.fireChannelRead(data)
  }

  /// A complete request head has been decoded.
  func headArrived() {
    awaitingHead = false
    headDeadline?.cancel()
    headDeadline = nil
  }

  /// A response has been written in full: the next bytes start the next request's head.
  func responseEnded() {
    awaitingHead = true
  }

  private func startHeadDeadline(_ context: ChannelHandlerContext) {
    headDeadline?.cancel()
    headDeadline = BodyDeadlineHandler.closing(
      context, after: headerTimeout, unless: "request head", logger: logger)
  }

  private func finish() {
    headDeadline?.cancel()
    headDeadline = nil
    if let source {
      limiter.release(source)
      self.source = nil
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    finish()
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    finish()
  }
}

/// Hummingbird's HTTP/1 child channel with `ConnectionGuardHandler` first in the pipeline.
struct GuardedHTTP1Channel: ServerChildChannel {
  typealias Value = HTTP1Channel.Value

  let inner: HTTP1Channel
  let limiter: SourceConnectionLimiter
  let headerTimeout: TimeAmount
  let logger: Logger

  func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
    channel.eventLoop.makeCompletedFuture {
      try channel.pipeline.syncOperations.addHandler(
        ConnectionGuardHandler(limiter: limiter, headerTimeout: headerTimeout, logger: self.logger),
        position: .first)
    }.flatMap {
      inner.setup(channel: channel, logger: logger)
    }
  }

  func handle(value: Value, logger: Logger) async {
    await inner.handle(value: value, logger: logger)
  }
}
