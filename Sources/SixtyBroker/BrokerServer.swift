import Crypto
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import NIOPosix
import ServiceLifecycle
import SixtyAudit

/// The request context: Hummingbird's core storage plus the peer address (for the audit log and
/// `allowed_sources`).
public struct BrokerRequestContext: RequestContext, RemoteAddressRequestContext {
  public var coreContext: CoreRequestContextStorage
  public let remoteAddress: SocketAddress?

  public init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
    remoteAddress = source.channel.remoteAddress
  }
}

/// Adapts Hummingbird requests to `Broker.handle`.
struct BrokerResponder: HTTPResponder {
  typealias Context = BrokerRequestContext
  let broker: Broker

  func respond(to request: Request, context: BrokerRequestContext) async throws -> Response {
    let limit = broker.config.maxBodyBytes
    let body: ByteBuffer
    do {
      body = try await request.body.collect(upTo: limit + 1)
    } catch is NIOTooManyBytesError {
      return Response(status: .contentTooLarge, headers: [.connection: "close"])
    }
    let path = request.uri.path
    let query = request.uri.query ?? ""
    var headers: [(name: String, value: String)] = []
    headers.reserveCapacity(request.headers.count + 1)
    if let authority = request.head.authority { headers.append(("host", authority)) }
    for field in request.headers { headers.append((field.name.canonicalName, field.value)) }
    let address: String? =
      switch context.remoteAddress {
      case .v4(let a): a.host
      case .v6(let a): a.host
      default: nil
      }
    let answer = broker.handle(
      BrokerRequest(
        method: request.method.rawValue, path: path, query: query, headers: headers,
        body: Array(buffer: body), remoteAddress: address))
    var fields = HTTPFields()
    for (name, value) in answer.headers {
      if let name = HTTPFields.Element.Name(name) {
        fields.append(HTTPFields.Element(name: name, value: value))
      }
    }
    return Response(
      status: HTTPResponse.Status(code: answer.status), headers: fields,
      body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
  }
}

/// Bounds how long a request body may take, and closes connections the server answered early.
///
/// A connection whose request body has not arrived in full `timeout` after its head is closed,
/// so a client that dribbles its body cannot hold a connection (one of `max_connections`)
/// forever; slow request heads are closed by `ConnectionGuardHandler`'s header deadline, which
/// this handler tells when a head has arrived and when a response has ended. When the response
/// ends before the request did (a 413 for an oversized body), the connection is closed after the
/// response instead of reading the rest of the body.
final class BodyDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
  typealias InboundIn = HTTPRequestPart
  typealias InboundOut = HTTPRequestPart
  typealias OutboundIn = HTTPResponsePart
  typealias OutboundOut = HTTPResponsePart

  private let timeout: TimeAmount
  private let logger: Logger
  private var deadline: Scheduled<Void>?
  private var readingRequest = false
  /// The connection's guard, when the pipeline has one.
  private var connectionGuard: ConnectionGuardHandler?

  init(timeout: TimeAmount, logger: Logger) {
    self.timeout = timeout
    self.logger = logger
  }

  func handlerAdded(context: ChannelHandlerContext) {
    connectionGuard = try? context.pipeline.syncOperations.handler(type: ConnectionGuardHandler.self)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head:
      connectionGuard?.headArrived()
      readingRequest = true
      deadline?.cancel()
      let channel = context.channel
      let logger = logger
      let seconds = Double(timeout.nanoseconds) / 1e9
      deadline = context.eventLoop.scheduleTask(in: timeout) {
        logger.warning(
          "closing a connection whose request body did not arrive within \(seconds)s",
          metadata: ["peer": "\(channel.remoteAddress?.ipAddress ?? "unknown")"])
        channel.close(promise: nil)
      }
    case .end:
      readingRequest = false
      deadline?.cancel()
      deadline = nil
    case .body:
      break
    }
    context.fireChannelRead(data)
  }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    if case .end = unwrapOutboundIn(data) { connectionGuard?.responseEnded() }
    guard case .end = unwrapOutboundIn(data), readingRequest else {
      context.write(data, promise: promise)
      return
    }
    deadline?.cancel()
    deadline = nil
    context.writeAndFlush(data, promise: promise)
    context.close(promise: nil)
  }

  func channelInactive(context: ChannelHandlerContext) {
    deadline?.cancel()
    deadline = nil
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    deadline?.cancel()
    deadline = nil
    connectionGuard = nil
  }
}

/// Drops expired keys every few seconds so memory follows the active set.
struct KeyPurgeService: Service {
  let broker: Broker
  let interval: Duration

  func run() async throws {
    while !Task.isCancelled && !Task.isShuttingDownGracefully {
      try? await Task.sleep(for: interval)
      broker.store.purge(now: broker.clock())
    }
  }
}

/// `sixty broker serve`: loads the signing key, opens the audit log, and serves until SIGTERM or
/// SIGINT, finishing requests in flight.
public enum BrokerServer {
  /// Loads the Ed25519 signing key from `path` (raw 32 bytes, base64), creating it 0600 when missing.
  public static func signingKey(path: String?) throws -> Curve25519.Signing.PrivateKey {
    guard let path else { return Curve25519.Signing.PrivateKey() }
    if let text = try? String(contentsOfFile: path, encoding: .utf8) {
      guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
        let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
      else {
        throw BrokerStartError(
          "the signing key file \(path) does not hold a base64 Ed25519 private key (32 bytes).")
      }
      var info = stat()
      if stat(path, &info) == 0 && info.st_mode & 0o077 != 0 {
        throw BrokerStartError(
          "the signing key file \(path) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); expected 0600."
        )
      }
      return key
    }
    let key = Curve25519.Signing.PrivateKey()
    let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw BrokerStartError(
        "cannot create the signing key file \(path): \(String(cString: strerror(errno))).")
    }
    defer { close(fd) }
    let text = Array((key.rawRepresentation.base64EncodedString() + "\n").utf8)
    guard write(fd, text, text.count) == text.count else {
      throw BrokerStartError(
        "cannot write the signing key file \(path): \(String(cString: strerror(errno))).")
    }
    return key
  }

  /// Builds the application; `onRunning` receives the bound port (useful with port 0).
  public static func application(
    broker: Broker, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
  ) -> some ApplicationProtocol {
    let config = broker.config
    let limiter = SourceConnectionLimiter(limit: config.maxConnectionsPerSource)
    let http1 = HTTP1Channel.Configuration(
      additionalChannelHandlers: [
        BodyDeadlineHandler(timeout: .milliseconds(config.bodyTimeout.milliseconds), logger: logger)
      ],
      idleTimeout: .milliseconds(config.idleTimeout.milliseconds))
    let headerTimeout = TimeAmount.milliseconds(config.headerTimeout.milliseconds)
    return Application(
      responder: BrokerResponder(broker: broker),
      server: HTTPServerBuilder { responder in
        GuardedHTTP1Channel(
          inner: HTTP1Channel(responder: responder, configuration: http1), limiter: limiter,
          headerTimeout: headerTimeout, logger: logger)
      },
      configuration: ApplicationConfiguration(
        address: .hostname(config.host, port: config.port), serverName: "sixty-broker", backlog: 1024,
        availableConnectionsDelegate: .maximum(config.maxConnections, logger: logger)),
      services: [KeyPurgeService(broker: broker, interval: .seconds(5))],
      onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? config.port) },
      logger: logger)
  }

  /// Makes the server's event loops Swift Concurrency's global executor for this process, so a
  /// request's handler runs on the loop that read it instead of hopping to the cooperative pool
  /// and back (two thread wake-ups a request). For `sixty broker serve`, a process that does
  /// nothing else; call it before the server starts. Returns whether it took effect.
  @discardableResult
  public static func adoptEventLoopsAsExecutor() -> Bool {
    NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
  }

  /// Runs until SIGTERM or SIGINT.
  public static func run(
    config: BrokerConfig, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void
  )
    async throws
  {
    let key = try signingKey(path: config.signingKeyFile)
    let audit = try config.auditLog.map { try AuditLog(path: $0) }
    let broker = Broker(config: config, signingKey: key, audit: audit, logger: logger)
    let app = application(broker: broker, logger: logger, onRunning: onRunning)
    let group = ServiceGroup(
      configuration: .init(
        services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
  }

  /// The public half of the signing key, as agents pin it (base64 of the 32 raw bytes).
  public static func publicKeyText(_ key: Curve25519.Signing.PrivateKey) -> String {
    key.publicKey.rawRepresentation.base64EncodedString()
  }
}

public struct BrokerStartError: Error, CustomStringConvertible {
  public var description: String
  init(_ description: String) { self.description = description }
}
