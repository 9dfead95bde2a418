import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// One PostgreSQL connection used synchronously, for callers whose API is synchronous (the run
/// history, as with its SQLite file). Each call waits on a SwiftNIO future, never on Swift
/// Concurrency's pool, so a caller blocked here cannot starve the connection's own work. Calls are
/// serialised on the one connection; a lost connection is made again on the next call; every call
/// has a deadline.
public final class BlockingPostgres: @unchecked Sendable {
  public let location: PostgresLocation
  let logger: Logger
  let timeout: TimeAmount
  let group: any EventLoopGroup
  // `lock` serialises use of `connection` (one statement at a time, transactions whole).
  private let lock = NSLock()
  private var connection: PostgresConnection?
  private var nextID = 1

  public init(
    _ location: PostgresLocation, timeout: TimeAmount = .seconds(15),
    logger: Logger = Logger(label: "sixty.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
  ) {
    self.location = location
    self.logger = logger
    self.timeout = timeout
    group = MultiThreadedEventLoopGroup.singleton
  }

  // PostgresNIO wants every connection closed before it goes.
  deinit {
    let closing: EventLoopFuture<Void>? = connection?.close()
    _ = try? closing?.wait()
  }

  /// A statement runner inside `transaction` or `session`.
  public struct Session {
    let connection: PostgresConnection
    let owner: BlockingPostgres

    /// Runs `query` and returns its rows (all of them: callers bound their results with LIMIT).
    @discardableResult
    public func query(_ query: PostgresQuery) throws -> [PostgresRandomAccessRow] {
      try owner.wait(connection.query(query, logger: owner.logger), on: connection).rows.map {
        $0.makeRandomAccess()
      }
    }

    /// The number of rows `query` changed.
    public func execute(_ query: PostgresQuery) throws -> Int {
      try owner.wait(connection.query(query, logger: owner.logger), on: connection).metadata.rows ?? 0
    }
  }

  /// Runs `body` in a transaction (rolled back when it throws). `what` names the work in errors.
  public func transaction<T>(_ what: String, _ body: (Session) throws -> T) throws(SharedDatabase.Failure)
    -> T
  {
    try session(what) { session in
      try session.query("BEGIN")
      do {
        let result = try body(session)
        try session.query("COMMIT")
        return result
      } catch {
        _ = try? session.query("ROLLBACK")
        throw error
      }
    }
  }

  /// Runs `body` with the connection, outside a transaction (each statement commits alone).
  public func session<T>(_ what: String, _ body: (Session) throws -> T) throws(SharedDatabase.Failure) -> T {
    lock.lock()
    defer { lock.unlock() }
    do {
      let connection = try connected()
      do {
        return try body(Session(connection: connection, owner: self))
      } catch {
        if connection.isClosed { self.connection = nil }
        throw error
      }
    } catch let error as SharedDatabase.Failure {
      throw error
    } catch let error as PSQLError {
      throw SharedDatabase.Failure(
        "The database \(location) refused \(what): \(SharedDatabase.describe(error)).")
    } catch {
      throw SharedDatabase.Failure("The database \(location) failed while \(what): \(error).")
    }
  }

  func connected() throws -> PostgresConnection {
    if let connection, !connection.isClosed { return connection }
    connection = nil
    var configuration: PostgresConnection.Configuration
    if let socket = location.unixSocketPath {
      configuration = .init(
        unixSocketPath: socket, username: location.user, password: location.password,
        database: location.database)
    } else {
      configuration = .init(
        host: location.host, port: location.port, username: location.user, password: location.password,
        database: location.database, tls: try BlockingPostgres.tls(location))
    }
    configuration.options.connectTimeout = .milliseconds(Int64(location.connectTimeout * 1000))
    configuration.options.additionalStartupParameters = [("application_name", location.applicationName)]
    let id = nextID
    nextID += 1
    let made = try PostgresConnection.connect(
      on: group.next(), configuration: configuration, id: id, logger: logger
    ).wait()
    connection = made
    return made
  }

  /// Waits for `future`, closing the connection (which fails the future) past the deadline.
  func wait<T: Sendable>(_ future: EventLoopFuture<T>, on connection: PostgresConnection) throws -> T {
    let deadline = future.eventLoop.scheduleTask(in: timeout) {
      let _: EventLoopFuture<Void> = connection.close()
    }
    defer { deadline.cancel() }
    do {
      return try future.wait()
    } catch {
      if connection.isClosed {
        throw SharedDatabase.Failure(
          "The database \(location) did not answer within \(timeout.nanoseconds / 1_000_000_000) s, or closed the connection."
        )
      }
      throw error
    }
  }

  static func tls(_ location: PostgresLocation) throws -> PostgresConnection.Configuration.TLS {
    guard let (tls, required) = location.tlsSettings() else { return .disable }
    let context = try NIOSSLContext(configuration: tls)
    return required ? .require(context) : .prefer(context)
  }

  /// Applies `migrations` of `component` once, under an advisory lock (see `SharedDatabase`).
  public func migrate(component: String, _ migrations: [PostgresMigration]) throws(SharedDatabase.Failure) {
    try transaction("applying the \(component) migrations") { session in
      try session.query("SELECT pg_advisory_xact_lock(\(SharedDatabase.migrationLock))")
      try session.query(
        """
        CREATE TABLE IF NOT EXISTS sixty_migrations (
          component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          PRIMARY KEY (component, version))
        """)
      let applied = Set(
        try session.query("SELECT version FROM sixty_migrations WHERE component = \(component)").map {
          try $0[0].decode(Int.self)
        })
      for migration in migrations.sorted(by: { $0.version < $1.version })
      where !applied.contains(migration.version) {
        for statement in migration.statements { try session.query(PostgresQuery(unsafeSQL: statement)) }
        try session.query(
          "INSERT INTO sixty_migrations (component, version) VALUES (\(component), \(migration.version))")
      }
    }
  }
}

extension PostgresRandomAccessRow {
  /// The value of `column` as `T` (an optional for a nullable column).
  public func value<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
    try self[column].decode(T.self)
  }
}
