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
import SixtyPostgres

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
    // The numeric address (`host` is only the name an address was made from, empty for some).
    let address: String? =
      switch context.remoteAddress {
      case .v4, .v6: context.remoteAddress?.ipAddress
      default: nil
      }
    let answer = try await BrokerServer.handle(
      BrokerRequest(
        method: request.method.rawValue, path: path, query: query, headers: headers,
        body: Array(buffer: body), remoteAddress: address), broker: broker)
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
      deadline = Self.closing(context, after: timeout, unless: "request body", logger: logger)
    case .end:
      readingRequest = false
      deadline?.cancel()
      deadline = nil
    case .body:
      break
    }
    context.fireChannelRead(data)
  }

  /// Closes the connection `timeout` from now, logging which `part` of the request did not
  /// arrive in time, unless the returned task is cancelled first.
  static func closing(
    _ context: ChannelHandlerContext, after timeout: TimeAmount, unless part: String, logger: Logger
  )
    -> Scheduled<Void>
  {
    let channel = context.channel
    let seconds = Double(timeout.nanoseconds) / 1e9
    return context.eventLoop.scheduleTask(in: timeout) {
      logger.warning(
        "closing a connection whose \(part) did not arrive within \(seconds)s",
        metadata: ["peer": "\(channel.remoteAddress?.ipAddress ?? "unknown")"])
      channel.close(promise: nil)
    }
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

/// Every few seconds: drops expired keys so memory follows the active set, and writes the
/// summaries of unauthenticated requests whose period has ended (all of them at shutdown).
struct KeyPurgeService: Service {
  let broker: Broker
  let interval: Duration

  func run() async throws {
    while !Task.isCancelled && !Task.isShuttingDownGracefully {
      // Graceful shutdown ends the wait, so the server stops at once rather than after it.
      try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
      broker.store.purge(now: broker.clock())
      if let shared = broker.shared {
        do {
          try await shared.purge(now: broker.clock())
        } catch {
          broker.logger.warning("cannot remove expired keys from the database: \(error)")
        }
      }
      broker.flushUnauthenticated()
    }
    broker.flushUnauthenticated(force: true)
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

  /// Threads for requests that write the audit log: an append waits for its fsync, which must block
  /// neither an event loop nor Swift Concurrency's cooperative pool. Appends running at once share
  /// an fsync (`AuditLog` commits in groups), so there are more threads than cores.
  static let auditPool: NIOThreadPool = {
    let pool = NIOThreadPool(numberOfThreads: 16)
    pool.start()
    return pool
  }()

  /// Serves one request: on `auditPool` when it writes an audit record (a push or an agent fetch
  /// with an audit log configured), inline otherwise (health, metrics, unknown paths).
  public static func handle(_ request: BrokerRequest, broker: Broker) async throws -> BrokerResponse {
    if let shared = broker.shared { return await broker.handleShared(request, store: shared) }
    let audited =
      broker.audit != nil
      && ((request.method == "POST" && request.path == "/")
        || (request.method == "GET" && request.path == "/agent/v1/keys"))
    guard audited else { return broker.handle(request) }
    return try await auditPool.runIfActive { broker.handle(request) }
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
    if config.signingKeyFile == nil {
      logger.warning(
        "no signing_key_file in broker.yml: this run signs key lists and audit checkpoints with a key that ends with it, so agents must be given its new public key after every restart and 'sixty audit verify --broker-config' cannot check the checkpoints; set signing_key_file."
      )
    }
    if let url = config.store {
      try await runShared(config: config, url: url, key: key, logger: logger, onRunning: onRunning)
      return
    }
    let audit: AuditLog?
    do {
      audit = try config.auditLog.map { try AuditLog(path: $0) }
    } catch let error as AuditError {
      throw BrokerStartError(error.message)
    }
    if let audit {
      if let repair = audit.repair { logger.warning("\(repair)") }
      let (sequence, _) = audit.status
      if audit.lastCheckpoint == nil && sequence > 0 {
        logger.warning(
          "the audit log \(audit.path) has \(sequence) records but no signed checkpoint (\(audit.checkpointPath)): records removed from its end while the broker was stopped could not be detected; signing its head now."
        )
      }
    }
    // A restarted broker without a record of what it accepted (no replay cache file, or a new
    // one) refuses every request signed before it started. X-Amz-Date counts whole seconds, so
    // the cut is the next whole second, and the broker starts serving only then: no request
    // signed after the start is refused for it.
    let start = Date()
    let floor = Date(timeIntervalSince1970: start.timeIntervalSince1970.rounded(.up))
    let replays: any ReplayCache
    var floorInEffect = true
    if let path = config.replayCachePath {
      do {
        let file = try FileReplayCache(
          path: path, retention: 2 * config.maxClockSkew.seconds, now: start, refusingSignedBeforeIfNew: floor
        )
        if file.isNew {
          logger.warning(
            "the replay cache \(path) did not exist and was created; requests signed before this start are refused"
          )
        }
        floorInEffect = file.isNew
        replays = file
      } catch let error as ReplayCacheError {
        throw BrokerStartError(error.description)
      }
    } else {
      replays = MemoryReplayCache(retention: 2 * config.maxClockSkew.seconds, refusingSignedBefore: floor)
    }
    let broker = Broker(
      config: config, signingKey: key, audit: audit, replays: replays,
      authority: try certificateAuthority(config, logger: logger), logger: logger)
    for warning in broker.startupWarnings { logger.warning("\(warning)") }
    if let path = config.replayCachePath {
      logger.info("accepted signatures are kept in \(path) for \(Int(2 * config.maxClockSkew.seconds))s")
    }
    if !config.regionIsDefault { logger.info("accepting only requests signed for \(config.region)") }
    if floorInEffect, floor.timeIntervalSinceNow > 0 {
      try await Task.sleep(for: .milliseconds(Int(floor.timeIntervalSinceNow * 1000) + 1))
    }
    let app = application(broker: broker, logger: logger, onRunning: onRunning)
    // Services stop in reverse order: the checkpoint service after the server, so its last
    // checkpoint covers the last request's record.
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
    if let audit {
      services.append(.init(service: AuditCheckpointService(log: audit, signingKey: key, logger: logger)))
    }
    services.append(.init(service: app))
    let group = ServiceGroup(
      configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
  }

  /// The certificate authority of `certificates:`, its key made when missing, and its revocation
  /// list written (empty) when missing: sshd refuses every key while `RevokedKeys` names a file
  /// that does not exist.
  static func certificateAuthority(_ config: BrokerConfig, logger: Logger) throws -> CertificateAuthority? {
    guard let settings = config.certificates else { return nil }
    do {
      let authority = try CertificateAuthority.load(settings)
      if let file = settings.revokedKeysFile, !FileManager.default.fileExists(atPath: file) {
        try authority.revoke([], now: Date())
      }
      logger.info(
        "signing 60-second certificates with \(authority.signer.type.sshName) CA \(authority.signer.fingerprint)"
      )
      return authority
    } catch {
      throw BrokerStartError(error.description)
    }
  }

  /// Serves with keys, replays and the audit chain in the database at `url`, shared with every
  /// other replica on it. Migrations are applied at start (once, whichever replica is first).
  static func runShared(
    config: BrokerConfig, url: String, key: Curve25519.Signing.PrivateKey, logger: Logger,
    onRunning: @escaping @Sendable (Int) async -> Void
  ) async throws {
    let location: PostgresLocation
    do {
      location = try PostgresLocation.parse(
        url, origin: config.storeOrigin, passwordFile: config.storePasswordFile)
    } catch {
      throw BrokerStartError(error.description)
    }
    let store: SharedBrokerStore
    do {
      store = try await SharedBrokerStore.open(location, logger: logger)
    } catch {
      throw BrokerStartError("cannot open the broker's store: \(error)")
    }
    defer { store.database.close() }
    // Records a replica left waiting when it stopped get their place in the chain now.
    _ = try? await store.chainPending()
    let (sequence, _) = try await store.head()
    logger.info("keys, replays and the audit chain (\(sequence) records) are in \(location)")
    let broker = Broker(
      config: config, signingKey: key, audit: nil, shared: store,
      authority: try certificateAuthority(config, logger: logger), logger: logger)
    for warning in broker.startupWarnings { logger.warning("\(warning)") }
    if !config.regionIsDefault { logger.info("accepting only requests signed for \(config.region)") }
    let app = application(broker: broker, logger: logger, onRunning: onRunning)
    let group = ServiceGroup(
      configuration: .init(
        services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
  }

  /// The public half of the signing key, as agents pin it (base64 of the 32 raw bytes).
  /// The public key of the broker configured at `path`, from its signing_key_file, to check
  /// the signatures of its audit checkpoints.
  public static func auditPublicKey(config: BrokerConfig, path: String) throws(BrokerStartError)
    -> Curve25519.Signing.PublicKey
  {
    guard let file = config.signingKeyFile else {
      throw BrokerStartError(
        "\(path) has no signing_key_file, so its broker signs with a new key at each start; pass --public-key instead."
      )
    }
    guard let text = try? String(contentsOfFile: file, encoding: .utf8),
      let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
      let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
    else {
      throw BrokerStartError(
        "cannot read the signing key file \(file) named by \(path) (expected a base64 Ed25519 private key).")
    }
    return key.publicKey
  }

  public static func publicKeyText(_ key: Curve25519.Signing.PrivateKey) -> String {
    key.publicKey.rawRepresentation.base64EncodedString()
  }
}

public struct BrokerStartError: Error, CustomStringConvertible {
  public var description: String
  init(_ description: String) { self.description = description }
}
