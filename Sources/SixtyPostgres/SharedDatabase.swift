import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// One migration of one component's tables: applied once, in order, inside a transaction.
public struct PostgresMigration: Sendable {
  public var version: Int
  public var statements: [String]
  public init(version: Int, statements: [String]) {
    self.version = version
    self.statements = statements
  }
}

/// A running connection pool to one database, with its migrations applied.
///
/// Every operation has a deadline (`operationTimeout`): a database that stops answering makes the
/// caller fail with a sentence naming it, never wait forever.
public final class SharedDatabase: Sendable {
  public let location: PostgresLocation
  public let client: PostgresClient
  let runner: Task<Void, Never>
  let logger: Logger
  public let operationTimeout: Duration

  public struct Failure: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// Whether the server answered and refused a statement (a constraint, a bad value), as opposed
    /// to a lost connection or a deadline: only then can the same work succeed in smaller parts.
    public var refusedByServer: Bool
    public init(_ description: String, refusedByServer: Bool = false) {
      self.description = description
      self.refusedByServer = refusedByServer
    }
  }

  /// Starts a pool for `location` and applies `migrations` of `component` (under an advisory lock,
  /// so replicas starting together apply each migration once).
  public static func open(
    _ location: PostgresLocation, component: String, migrations: [PostgresMigration],
    maximumConnections: Int = 20, operationTimeout: Duration = .seconds(10),
    logger: Logger = Logger(label: "sixty.postgres")
  ) async throws -> SharedDatabase {
    let database = try SharedDatabase(
      location, maximumConnections: maximumConnections, operationTimeout: operationTimeout, logger: logger)
    do {
      try await database.migrate(component: component, migrations)
    } catch {
      database.close()
      throw error
    }
    return database
  }

  init(
    _ location: PostgresLocation, maximumConnections: Int, operationTimeout: Duration, logger: Logger
  ) throws {
    self.location = location
    self.logger = logger
    self.operationTimeout = operationTimeout
    var configuration: PostgresClient.Configuration
    if let socket = location.unixSocketPath {
      configuration = .init(
        unixSocketPath: socket, username: location.user, password: location.password,
        database: location.database)
    } else {
      configuration = .init(
        host: location.host, port: location.port, username: location.user, password: location.password,
        database: location.database, tls: try SharedDatabase.tls(location))
    }
    configuration.options.connectTimeout = .milliseconds(Int64(location.connectTimeout * 1000))
    configuration.options.maximumConnections = max(2, maximumConnections)
    configuration.options.additionalStartupParameters = [("application_name", location.applicationName)]
    let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    self.client = client
    runner = Task { await client.run() }
  }

  static func tls(_ location: PostgresLocation) throws -> PostgresClient.Configuration.TLS {
    guard let (tls, required) = location.tlsSettings() else { return .disable }
    return required ? .require(tls) : .prefer(tls)
  }

  /// Stops the pool; pending operations fail.
  public func close() { runner.cancel() }

  /// Runs `body` with a connection, within `operationTimeout`; errors become sentences naming the
  /// database and `what` was being done.
  public func withConnection<T: Sendable>(
    _ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
  ) async throws -> T {
    try await deadline(what, timeout: operationTimeout) {
      try await self.client.withConnection { try await body($0) }
    }
  }

  /// Runs `body` in a transaction (rolled back when it throws), within `operationTimeout`.
  public func transaction<T: Sendable>(
    _ what: String, timeout: Duration? = nil,
    _ body: @escaping @Sendable (PostgresConnection) async throws -> T
  ) async throws -> T {
    try await deadline(what, timeout: timeout ?? operationTimeout) {
      try await self.client.withConnection { connection in
        try await connection.query("BEGIN", logger: self.logger)
        do {
          let result = try await body(connection)
          try await connection.query("COMMIT", logger: self.logger)
          return result
        } catch {
          _ = try? await connection.query("ROLLBACK", logger: self.logger)
          throw error
        }
      }
    }
  }

  func deadline<T: Sendable>(
    _ what: String, timeout: Duration, _ body: @escaping @Sendable () async throws -> T
  ) async throws -> T {
    let location = self.location
    do {
      return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
          try await Task.sleep(for: timeout)
          return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
          throw Failure(
            "The database \(location) did not answer within \(timeout.components.seconds) s while \(what).")
        }
        return value
      }
    } catch let error as Failure {
      throw error
    } catch let error as PSQLError {
      throw Failure(
        "The database \(location) refused \(what): \(SharedDatabase.describe(error)).",
        refusedByServer: error.serverInfo != nil)
    } catch is CancellationError {
      throw CancellationError()
    } catch {
      throw Failure("The database \(location) failed while \(what): \(error).")
    }
  }

  /// The server's message and SQLSTATE, or the connection problem, without query text or binds.
  public static func describe(_ error: PSQLError) -> String {
    if let fields = error.serverInfo, let message = fields[.message] {
      let code = fields[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
      return message + code
    }
    if let underlying = error.underlying { return "\(error.code): \(underlying)" }
    return "\(error.code)"
  }

  /// Whether `error` is a serialization failure or deadlock, worth retrying the transaction for.
  public static func isRetryable(_ error: any Error) -> Bool {
    guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
    return state == "40001" || state == "40P01"
  }

  /// The advisory lock that serialises migrations of every component.
  static let migrationLock = Int64(0x5358_5459_4D49_4752)

  /// How long a start may wait for its migrations: replicas starting together queue behind one
  /// another's migrations on the advisory lock, which a busy database makes slower than a query.
  public static let migrationTimeout = Duration.seconds(120)

  func migrate(component: String, _ migrations: [PostgresMigration]) async throws {
    try await transaction(
      "applying the \(component) migrations", timeout: max(operationTimeout, Self.migrationTimeout)
    ) { connection in
      // Serialises replicas that start together (even the table's creation); released at COMMIT.
      try await connection.query(
        "SELECT pg_advisory_xact_lock(\(Int64(0x5358_5459_4D49_4752)))", logger: self.logger)
      try await connection.query(
        """
        CREATE TABLE IF NOT EXISTS sixty_migrations (
          component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          PRIMARY KEY (component, version))
        """, logger: self.logger)
      var applied = Set<Int>()
      let rows = try await connection.query(
        "SELECT version FROM sixty_migrations WHERE component = \(component)", logger: self.logger)
      for try await version in rows.decode(Int.self) { applied.insert(version) }
      for migration in migrations.sorted(by: { $0.version < $1.version })
      where !applied.contains(migration.version) {
        for statement in migration.statements {
          try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
        }
        try await connection.query(
          "INSERT INTO sixty_migrations (component, version) VALUES (\(component), \(migration.version))",
          logger: self.logger)
      }
    }
  }
}

extension PostgresLocation {
  /// What `sslMode` asks for, as libpq reads it: nil for no TLS, else the client settings and
  /// whether TLS is required (`allow`/`prefer` encrypt when the server offers it, unchecked;
  /// `require` checks the certificate only when a root certificate is given).
  func tlsSettings() -> (TLSConfiguration, required: Bool)? {
    var tls = TLSConfiguration.makeClientConfiguration()
    if let root = sslRootCert { tls.trustRoots = .file(root) }
    switch sslMode {
    case .disable: return nil
    case .allow, .prefer:
      tls.certificateVerification = .none
      return (tls, false)
    case .require:
      tls.certificateVerification = sslRootCert == nil ? .none : .noHostnameVerification
    case .verifyCA:
      tls.certificateVerification = .noHostnameVerification
    case .verifyFull:
      tls.certificateVerification = .fullVerification
    }
    return (tls, true)
  }
}
