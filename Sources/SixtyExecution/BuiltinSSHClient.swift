import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSH
import SixtyCore
import SixtyKeys
import SixtyProcess

/// Sixty's own SSH client: one connection per host, opened in this process (no `ssh` process to
/// start), authenticated with the run's key and, in certificate mode, its certificate, signed at
/// once (one round of public-key authentication, where OpenSSH's client first asks whether the
/// host would take a key it can read). Each task is a session channel on it.
///
/// It speaks what swift-nio-ssh speaks: curve25519 and NIST ECDH key exchange, AES-GCM, Ed25519
/// and ECDSA host and user keys. A host that offers none of them, or that is known only by a key
/// type this client does not negotiate, is handed to OpenSSH (`BuiltinSSHError.useOpenSSH`).
enum BuiltinSSHClient {
  /// What is needed to log in to one host.
  struct Login: Sendable {
    var address: String
    var port: Int
    var user: String
    var key: NIOSSHPrivateKey
    /// The certificate of `key` (an OpenSSH `…-cert-v01@openssh.com` line), in certificate mode.
    var certificate: NIOSSHCertifiedPublicKey?
    var connectTimeout: Double
    var hostKeys: HostKeyCheck
    /// Environment variables sent with every command (ssh_config's `SendEnv`).
    var environment: [(String, String)] = []
  }

  /// The private key of a run's key pair, for NIO SSH (nil for RSA, which it does not sign with).
  static func privateKey(_ pair: SSHKeyPair) -> NIOSSHPrivateKey? {
    if let seed = pair.ed25519Seed, let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) {
      return NIOSSHPrivateKey(ed25519Key: key)
    }
    if let scalar = pair.ecdsaP256Scalar, let key = try? P256.Signing.PrivateKey(rawRepresentation: scalar) {
      return NIOSSHPrivateKey(p256Key: key)
    }
    return nil
  }

  /// Opens and authenticates a connection; fails with a `BuiltinSSHError`.
  static func connect(_ login: Login, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton)
    -> EventLoopFuture<BuiltinConnection>
  {
    let loop = group.next()
    let ready = loop.makePromise(of: Void.self)
    let outcome = LoginOutcome()
    let bootstrap = ClientBootstrap(group: loop)
      .connectTimeout(.milliseconds(Int64(max(0.1, login.connectTimeout) * 1000)))
      .channelOption(.socketOption(.tcp_nodelay), value: 1)
      // A host that vanishes is found within about a minute, as OpenSSH's ServerAliveInterval=15
      // and ServerAliveCountMax=3 (Sixty's options for ssh) find it.
      .channelOption(.socketOption(.so_keepalive), value: 1)
      .channelOption(ChannelOptions.Types.SocketOption(level: IPPROTO_TCP, name: TCP_KEEPIDLE), value: 15)
      .channelOption(ChannelOptions.Types.SocketOption(level: IPPROTO_TCP, name: TCP_KEEPINTVL), value: 15)
      .channelOption(ChannelOptions.Types.SocketOption(level: IPPROTO_TCP, name: TCP_KEEPCNT), value: 3)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          let configuration = SSHClientConfiguration(
            userAuthDelegate: OneKey(login: login, outcome: outcome),
            serverAuthDelegate: HostKeyDelegate(check: login.hostKeys, outcome: outcome))
          try channel.pipeline.syncOperations.addHandler(
            NIOSSHHandler(
              role: .client(configuration), allocator: channel.allocator, inboundChildChannelInitializer: nil)
          )
          try channel.pipeline.syncOperations.addHandler(LoginWatcher(ready: ready, outcome: outcome))
        }
      }
    return bootstrap.connect(host: login.address, port: login.port)
      .flatMapError { error in
        // No channel: nothing else completes `ready`.
        let failure = outcome.note(.connect(Self.describe(error)))
        ready.fail(failure)
        return loop.makeFailedFuture(failure)
      }
      .flatMap { channel in
        // OpenSSH's ConnectTimeout covers the banner exchange too; this covers the whole login.
        let timer = loop.scheduleTask(in: .milliseconds(Int64(max(1, login.connectTimeout) * 1000) + 5000)) {
          ready.fail(BuiltinSSHError.connect("Connection timed out during the login"))
          channel.close(promise: nil)
        }
        return ready.futureResult
          .map {
            timer.cancel()
            return BuiltinConnection(channel: channel, environment: login.environment)
          }
          .flatMapError { error in
            timer.cancel()
            channel.close(promise: nil)
            return loop.makeFailedFuture(outcome.error ?? error)
          }
      }
  }

  static func describe(_ error: Error) -> String {
    if let error = error as? IOError {
      return String(cString: strerror(error.errnoCode))
    }
    if let error = error as? ChannelError, case .connectTimeout = error { return "Connection timed out" }
    if let error = error as? NIOConnectionError {
      if let first = error.connectionErrors.first { return describe(first.error) }
      if error.dnsAError != nil || error.dnsAAAAError != nil { return "Could not resolve hostname" }
      return "Connection failed"
    }
    return "\(error)"
  }
}

/// Why a built-in login failed: the words are OpenSSH's where it has some, so reports read alike.
enum BuiltinSSHError: Error, Equatable, CustomStringConvertible {
  /// TCP connect or the SSH handshake failed (refused, unreachable, timed out, closed).
  case connect(String)
  case permissionDenied
  /// The host's key is not the one known for it.
  case hostKey(String)
  /// This client cannot talk to the host the way OpenSSH would (no common algorithm; the host is
  /// known only by a key type this client does not negotiate): OpenSSH gets the host.
  case useOpenSSH(String)
  case lost

  var description: String {
    switch self {
    case .connect(let text): text
    case .permissionDenied: "Permission denied (publickey)."
    case .hostKey(let text): text
    case .useOpenSSH(let text): text
    case .lost: "the connection was lost"
    }
  }
}

/// What went wrong during a login, noted by the delegates (which cannot fail the login with a
/// reason of their own) for the watcher.
final class LoginOutcome: @unchecked Sendable {
  private let lock = NSLock()
  private var _error: BuiltinSSHError?
  var error: BuiltinSSHError? { lock.withLock { _error } }
  /// Notes `error` unless another was noted first; returns the one noted first.
  @discardableResult func note(_ error: BuiltinSSHError) -> BuiltinSSHError {
    lock.withLock {
      if _error == nil { _error = error }
      return _error ?? error
    }
  }
}

/// Offers the run's key (with its certificate) once, signed at once.
final class OneKey: NIOSSHClientUserAuthenticationDelegate {
  let login: BuiltinSSHClient.Login
  let outcome: LoginOutcome
  var offered = false
  init(login: BuiltinSSHClient.Login, outcome: LoginOutcome) {
    self.login = login
    self.outcome = outcome
  }

  func nextAuthenticationType(
    availableMethods: NIOSSHAvailableUserAuthenticationMethods,
    nextChallengePromise: EventLoopPromise<NIOSSHUserAuthenticationOffer?>
  ) {
    guard !offered, availableMethods.contains(.publicKey) else {
      outcome.note(.permissionDenied)
      nextChallengePromise.succeed(nil)
      return
    }
    offered = true
    let key: NIOSSHUserAuthenticationOffer.Offer.PrivateKey =
      login.certificate.map { .init(privateKey: login.key, certifiedKey: $0) } ?? .init(privateKey: login.key)
    nextChallengePromise.succeed(
      NIOSSHUserAuthenticationOffer(username: login.user, serviceName: "", offer: .privateKey(key)))
  }
}

/// Checks the host's key against the policy (see `HostKeyCheck`).
final class HostKeyDelegate: NIOSSHClientServerAuthenticationDelegate {
  let check: HostKeyCheck
  let outcome: LoginOutcome
  init(check: HostKeyCheck, outcome: LoginOutcome) {
    self.check = check
    self.outcome = outcome
  }

  func validateHostKey(hostKey: NIOSSHPublicKey, validationCompletePromise: EventLoopPromise<Void>) {
    let line = String(openSSHPublicKey: hostKey)
    // Reading and appending known_hosts lines is file I/O: off the event loop.
    let check = self.check
    let outcome = self.outcome
    DispatchQueue.global().async {
      if let error = check.verify(line) {
        outcome.note(error)
        validationCompletePromise.fail(error)
      } else {
        validationCompletePromise.succeed(())
      }
    }
  }
}

/// Succeeds `ready` once the host accepted the key; fails it when the connection ends first.
final class LoginWatcher: ChannelInboundHandler, @unchecked Sendable {
  typealias InboundIn = Any
  let ready: EventLoopPromise<Void>
  let outcome: LoginOutcome
  init(ready: EventLoopPromise<Void>, outcome: LoginOutcome) {
    self.ready = ready
    self.outcome = outcome
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if event is UserAuthSuccessEvent { ready.succeed(()) }
    context.fireUserInboundEventTriggered(event)
  }

  func errorCaught(context: ChannelHandlerContext, error: Error) {
    if let error = error as? NIOSSHError, error.type == .keyExchangeNegotiationFailure {
      ready.fail(
        outcome.note(
          .useOpenSSH("no key exchange, cipher or host key type in common with the built-in client")))
    } else {
      // The error's text may carry what the host sent: escaped and bounded.
      ready.fail(
        outcome.note(
          .connect("Connection closed by remote host (\(SafeText.escaped("\(error)", limit: 200)))")))
    }
    context.close(promise: nil)
  }

  func channelInactive(context: ChannelHandlerContext) {
    ready.fail(outcome.note(.connect("Connection closed by remote host")))
    context.fireChannelInactive()
  }
}

/// One authenticated connection; each `exec` opens a session channel on it.
final class BuiltinConnection: @unchecked Sendable {
  let channel: Channel
  let environment: [(String, String)]
  init(channel: Channel, environment: [(String, String)]) {
    self.channel = channel
    self.environment = environment
  }

  /// What a command left: its exit status (or the signal that ended it; neither when the session
  /// ended first) and output.
  struct Result: Sendable {
    var status: Int32?
    var signal: String?
    var stdout: CappedBuffer
    var stderr: CappedBuffer
  }

  /// Runs `command` (the remote user's shell runs it, as with `ssh host command`) with `stdin`;
  /// `opened` gets the session's channel (to close it, stopping the command's session).
  func exec(
    _ command: String, stdin: ChildProcess.Input, cap: Int,
    opened: @escaping @Sendable (Channel) -> Void = { _ in }
  ) -> EventLoopFuture<Result> {
    let loop = channel.eventLoop
    let done = loop.makePromise(of: Result.self)
    let environment = self.environment
    let created = loop.makePromise(of: Channel.self)
    loop.execute { [channel] in
      do {
        let ssh = try channel.pipeline.syncOperations.handler(type: NIOSSHHandler.self)
        ssh.createChannel(created, channelType: .session) { child, type in
          guard type == .session else { return child.eventLoop.makeFailedFuture(BuiltinSSHError.lost) }
          return child.eventLoop.makeCompletedFuture {
            try child.syncOptions!.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            try child.pipeline.syncOperations.addHandler(
              ExecHandler(command: command, environment: environment, stdin: stdin, cap: cap, done: done))
          }
        }
      } catch {
        created.fail(error)
      }
    }
    created.futureResult.whenComplete { result in
      switch result {
      case .success(let child): opened(child)
      case .failure: done.fail(BuiltinSSHError.lost)
      }
    }
    return done.futureResult
  }

  func close() -> EventLoopFuture<Void> {
    channel.close().flatMapErrorThrowing { _ in }
  }

  var closed: EventLoopFuture<Void> { channel.closeFuture }
}

/// One command on a session channel: environment, `exec`, stdin, then output until the channel
/// closes.
final class ExecHandler: ChannelDuplexHandler, @unchecked Sendable {
  typealias InboundIn = SSHChannelData
  typealias InboundOut = Never
  typealias OutboundIn = Never
  typealias OutboundOut = SSHChannelData

  let command: String
  let environment: [(String, String)]
  let stdin: ChildProcess.Input
  let done: EventLoopPromise<BuiltinConnection.Result>
  var result: BuiltinConnection.Result
  var refused = false

  init(
    command: String, environment: [(String, String)], stdin: ChildProcess.Input, cap: Int,
    done: EventLoopPromise<BuiltinConnection.Result>
  ) {
    self.command = command
    self.environment = environment
    self.stdin = stdin
    self.done = done
    result = .init(status: nil, signal: nil, stdout: CappedBuffer(cap: cap), stderr: CappedBuffer(cap: cap))
  }

  func channelActive(context: ChannelHandlerContext) {
    for (name, value) in environment {
      context.triggerUserOutboundEvent(
        SSHChannelRequestEvent.EnvironmentRequest(wantReply: false, name: name, value: value), promise: nil)
    }
    context.triggerUserOutboundEvent(
      SSHChannelRequestEvent.ExecRequest(command: command, wantReply: true), promise: nil)
    context.fireChannelActive()
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    switch event {
    case is ChannelSuccessEvent:
      sendInput(context)
    case is ChannelFailureEvent:
      refused = true
      context.close(promise: nil)
    case let status as SSHChannelRequestEvent.ExitStatus:
      result.status = Int32(truncatingIfNeeded: status.exitStatus)
    case let signal as SSHChannelRequestEvent.ExitSignal:
      result.signal = signal.signalName
    case ChannelEvent.inputClosed:
      break
    default:
      context.fireUserInboundEventTriggered(event)
    }
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let message = unwrapInboundIn(data)
    guard case .byteBuffer(let buffer) = message.data else { return }
    let bytes = buffer.readableBytesView
    switch message.type {
    case .channel: result.stdout.append(ArraySlice(bytes))
    case .stdErr: result.stderr.append(ArraySlice(bytes))
    default: break
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    // Without an exit status or signal the session ended under the command (the connection
    // went, or Sixty closed the session): the caller decides which.
    if refused {
      done.fail(BuiltinSSHError.connect("the host refused to start the command"))
    } else {
      done.succeed(result)
    }
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: Error) {
    context.close(promise: nil)
  }

  /// Writes the command's stdin (bytes, then a file's contents, in chunks as the channel takes
  /// them), then ends it.
  func sendInput(_ context: ChannelHandlerContext) {
    let channel = context.channel
    var prefix: [UInt8] = []
    var file: String?
    switch stdin {
    case .none, .inherit: break
    case .file(let path): file = path
    case .bytes(let bytes, let then):
      prefix = bytes
      file = then
    }
    var written = channel.eventLoop.makeSucceededVoidFuture()
    if !prefix.isEmpty {
      written = channel.writeAndFlush(
        SSHChannelData(type: .channel, data: .byteBuffer(channel.allocator.buffer(bytes: prefix))))
    }
    if let file {
      written = written.flatMap { Self.stream(file, to: channel) }
    }
    written.whenComplete { _ in channel.close(mode: .output, promise: nil) }
  }

  /// Sends a file's contents in 64 KiB chunks, each after the previous one was written.
  static func stream(_ path: String, to channel: Channel) -> EventLoopFuture<Void> {
    let promise = channel.eventLoop.makePromise(of: Void.self)
    // The reads are file I/O: on a dispatch thread, never the event loop's.
    DispatchQueue.global().async {
      guard let handle = FileHandle(forReadingAtPath: path) else {
        promise.fail(BuiltinSSHError.connect("cannot read \(path)"))
        return
      }
      FileStreamer(handle: handle, channel: channel, promise: promise).next()
    }
    return promise.futureResult
  }
}

/// Reads a file chunk by chunk, writing each to a channel once the previous one was written.
// Sendable: `handle` is used by one chunk at a time (each read follows the previous write).
final class FileStreamer: @unchecked Sendable {
  let handle: FileHandle
  let channel: Channel
  let promise: EventLoopPromise<Void>
  init(handle: FileHandle, channel: Channel, promise: EventLoopPromise<Void>) {
    self.handle = handle
    self.channel = channel
    self.promise = promise
  }

  func next() {
    let chunk = (try? handle.read(upToCount: 1 << 16)) ?? nil
    guard let chunk, !chunk.isEmpty else {
      try? handle.close()
      promise.succeed(())
      return
    }
    let buffer = channel.allocator.buffer(bytes: chunk)
    channel.writeAndFlush(SSHChannelData(type: .channel, data: .byteBuffer(buffer))).whenComplete { result in
      switch result {
      case .success: DispatchQueue.global().async { self.next() }
      case .failure(let error):
        try? self.handle.close()
        self.promise.fail(error)
      }
    }
  }
}
