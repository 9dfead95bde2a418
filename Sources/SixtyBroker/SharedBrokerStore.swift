import Foundation
import Logging
import PostgresNIO
import SixtyAudit
import SixtyPostgres
import Synchronization

/// The broker's state in PostgreSQL, shared by every replica on the database: pushed keys with
/// their expiry, the replay cache and the audit chain. A key pushed through one replica is served
/// by any other at once; replays are refused across replicas; the audit records of all replicas
/// form one hash chain, appended under a row lock on the chain's head.
///
/// Writes are group-committed: what arrives while a transaction is in flight goes into the next
/// one (`GroupCommitter`), and each is atomic with its record. Records of pushes, fetches and
/// refusals commit into `broker_audit_pending` with no lock (so replicas' commits share WAL
/// flushes), and a chaining pass right after gives them their place in the chain under the
/// head's row lock, many at a time (`chainPending`); a certificate's record is chained in its own
/// transaction, since its sequence number is the certificate's serial. `export` and
/// `sixty audit verify --store` chain what waits first.
public final class SharedBrokerStore: Sendable {
  public let database: SharedDatabase
  let maxPerSlot: Int
  let committer: GroupCommitter
  /// Whether a chaining pass is running, and whether another was asked for meanwhile.
  let chaining = Mutex<(running: Bool, again: Bool)>((false, false))

  public static let migrations = [
    PostgresMigration(
      version: 1,
      statements: [
        """
        CREATE TABLE broker_keys (
          id BIGSERIAL PRIMARY KEY, instance TEXT NOT NULL, os_user TEXT NOT NULL, line TEXT NOT NULL,
          fingerprint TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL, request_id TEXT NOT NULL,
          principal TEXT NOT NULL, sources TEXT[] NOT NULL)
        """,
        "CREATE INDEX broker_keys_slot ON broker_keys (instance, os_user, expires_at)",
        "CREATE INDEX broker_keys_expiry ON broker_keys (expires_at)",
        """
        CREATE TABLE broker_replays (
          key TEXT PRIMARY KEY, signed_at TIMESTAMPTZ NOT NULL, forget_at TIMESTAMPTZ NOT NULL)
        """,
        "CREATE INDEX broker_replays_forget ON broker_replays (forget_at)",
        "CREATE TABLE broker_audit (sequence BIGINT PRIMARY KEY, line TEXT NOT NULL)",
        """
        CREATE TABLE broker_audit_head (
          id INTEGER PRIMARY KEY CHECK (id = 1), sequence BIGINT NOT NULL, hash TEXT NOT NULL)
        """,
        "INSERT INTO broker_audit_head (id, sequence, hash) VALUES (1, 0, '\(AuditLog.genesis)')",
      ]),
    // A slot's newest keys by id: a fetch reads its 64 newest valid keys and stops, instead of
    // reading every valid key of the slot to sort them.
    PostgresMigration(
      version: 2,
      statements: [
        "CREATE INDEX broker_keys_recent ON broker_keys (instance, os_user, id DESC)",
        "DROP INDEX broker_keys_slot",
      ]),
    // Records waiting for their place in the chain (see `GroupCommitter`).
    PostgresMigration(
      version: 3,
      statements: ["CREATE TABLE broker_audit_pending (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"]),
  ]

  public init(database: SharedDatabase, maxPerSlot: Int = 64) {
    self.database = database
    self.maxPerSlot = maxPerSlot
    committer = GroupCommitter(database: database, maxPerSlot: maxPerSlot)
    committer.onPending = { [weak self] in self?.chainSoon() }
  }

  /// Connects to `location` and applies the broker's migrations; every later operation has
  /// `operationTimeout`.
  public static func open(
    _ location: PostgresLocation, operationTimeout: Duration = .seconds(10), logger: Logger
  ) async throws -> SharedBrokerStore {
    SharedBrokerStore(
      database: try await SharedDatabase.open(
        location, component: "broker", migrations: migrations, maximumConnections: 32,
        operationTimeout: operationTimeout, logger: logger))
  }

  /// Whether `key` was accepted before (by any replica).
  public func check(_ key: String, now: Date) async throws -> ReplayVerdict {
    try await database.withConnection("checking the replay cache") { connection in
      let rows = try await connection.query(
        "SELECT 1 FROM broker_replays WHERE key = \(key) AND forget_at > \(now)", logger: Self.quiet)
      for try await _ in rows { return .replayed }
      return .fresh
    }
  }

  /// In one transaction: claims the replay key, appends the `accepted` record to the chain and
  /// stores the key. Nothing of it happens if any part fails; `.replayed` when another replica
  /// (or this one) accepted the same signature first.
  public func accept(
    replayKey: String, signedAt: Date, forgetAt: Date, record: AuditRecord, key: KeyStore.Key,
    instance: String,
    user: String
  ) async throws -> ReplayVerdict {
    let outcome = try await committer.submit(
      .accept(
        Acceptance(
          replayKey: replayKey, signedAt: signedAt, forgetAt: forgetAt, record: record, key: key,
          instance: instance, user: user)))
    guard case .verdict(let verdict) = outcome else { preconditionFailure("an acceptance gives a verdict") }
    return verdict
  }

  /// In one transaction: claims the replay key and appends the certificate's `accepted` record;
  /// its sequence number (the certificate's serial), or nil when the signature was a replay.
  public func certify(replayKey: String, signedAt: Date, forgetAt: Date, record: AuditRecord) async throws
    -> Int?
  {
    let outcome = try await committer.submit(
      .certify(Certification(replayKey: replayKey, signedAt: signedAt, forgetAt: forgetAt, record: record)))
    guard case .certified(let sequence) = outcome else {
      preconditionFailure("a certification gives a serial")
    }
    return sequence
  }

  /// Appends `record` to the chain.
  public func append(_ record: AuditRecord) async throws {
    _ = try await committer.submit(.append(record))
  }

  /// The keys valid at `now` for `instance` and `user`, newest last, and the record of serving
  /// them appended in the same transaction (no record, no keys).
  public func serve(
    instance: String, user: String, now: Date, record: @escaping @Sendable ([KeyStore.Key]) -> AuditRecord
  )
    async throws -> [KeyStore.Key]
  {
    let outcome = try await committer.submit(
      .serve(Serving(instance: instance, user: user, now: now, record: record)))
    guard case .keys(let keys) = outcome else { preconditionFailure("serving gives keys") }
    return keys
  }

  /// How many transactions this store has committed, and how many writes (acceptances, fetches,
  /// records) they carried: their ratio is the group commit's batch size.
  public var committed: (transactions: Int, writes: Int) {
    committer.state.withLock { ($0.transactions, $0.writes) }
  }

  /// How many keys are valid at `now`.
  public func activeKeys(now: Date) async throws -> Int {
    try await database.withConnection("counting active keys") { connection in
      let rows = try await connection.query(
        "SELECT count(*) FROM broker_keys WHERE expires_at > \(now)", logger: Self.quiet)
      for try await count in rows.decode(Int.self) { return count }
      return 0
    }
  }

  /// Removes expired keys and forgotten replay entries.
  public func purge(now: Date) async throws {
    try await database.withConnection("removing expired keys") { connection in
      try await connection.query("DELETE FROM broker_keys WHERE expires_at <= \(now)", logger: Self.quiet)
      try await connection.query("DELETE FROM broker_replays WHERE forget_at <= \(now)", logger: Self.quiet)
    }
  }

  /// Gives every record waiting in `broker_audit_pending` (of any replica, committed) its place
  /// in the chain, `batch` at a time, under the head's row lock; returns how many were chained.
  @discardableResult
  public func chainPending(batch: Int = 2000) async throws -> Int {
    var total = 0
    while true {
      let chained = try await database.transaction("chaining audit records") { connection in
        try await Self.chainOnce(limit: batch, on: connection)
      }
      total += chained
      if chained < batch { return total }
    }
  }

  static func chainOnce(limit: Int, on connection: PostgresConnection) async throws -> Int {
    let head = try await lockHead(on: connection)
    let rows = try await connection.query(
      "SELECT id, body FROM broker_audit_pending ORDER BY id LIMIT \(limit)", logger: quiet)
    var ids: [Int] = []
    var bodies: [String] = []
    for try await (id, body) in rows.decode((Int, String).self) {
      ids.append(id)
      bodies.append(body)
    }
    guard !ids.isEmpty else { return 0 }
    try await link(bodies, after: head, taking: ids, on: connection)
    return ids.count
  }

  /// The chain's head, row-locked until the transaction ends: appenders of every replica wait
  /// for it, so the chain stays linear.
  static func lockHead(on connection: PostgresConnection) async throws -> (sequence: Int, hash: String) {
    let rows = try await connection.query(
      "SELECT sequence, hash FROM broker_audit_head WHERE id = 1 FOR UPDATE", logger: quiet)
    for try await row in rows.decode((Int, String).self) { return row }
    throw SharedDatabase.Failure("The audit chain's head row is missing from the database.")
  }

  /// Appends the records whose unchained bodies are `bodies` after `head` (locked by
  /// `lockHead`), removes the waiting rows `ids` they came from, and moves the head; returns their
  /// sequence numbers.
  @discardableResult
  static func link(
    _ bodies: [String], after head: (sequence: Int, hash: String), taking ids: [Int] = [],
    on connection: PostgresConnection
  ) async throws -> [Int] {
    var (sequence, previous) = head
    var sequences: [Int] = []
    var lines: [String] = []
    sequences.reserveCapacity(bodies.count)
    lines.reserveCapacity(bodies.count)
    for (index, body) in bodies.enumerated() {
      guard let (line, hash) = AuditRecord.chain(unchained: body, sequence: sequence + 1, previous: previous)
      else {
        let which = index < ids.count ? "The waiting audit record \(ids[index])" : "An audit record"
        throw SharedDatabase.Failure("\(which) is not a record body; the chain stops before it.")
      }
      sequence += 1
      previous = hash
      sequences.append(sequence)
      lines.append(String(decoding: line, as: UTF8.self))
    }
    try await connection.query(
      """
      WITH added AS (
        INSERT INTO broker_audit (sequence, line) SELECT * FROM unnest(\(sequences)::bigint[], \(lines)::text[])),
      taken AS (DELETE FROM broker_audit_pending WHERE id = ANY(\(ids)::bigint[]))
      UPDATE broker_audit_head SET sequence = \(sequence), hash = \(previous) WHERE id = 1
      """, logger: quiet)
    return sequences
  }

  /// Starts a chaining pass unless one is running (then that one goes round again).
  func chainSoon() {
    let start = chaining.withLock { state -> Bool in
      if state.running {
        state.again = true
        return false
      }
      state = (true, false)
      return true
    }
    guard start else { return }
    Task {
      while true {
        _ = try? await self.chainPending()
        let again = chaining.withLock { state -> Bool in
          if state.again {
            state.again = false
            return true
          }
          state.running = false
          return false
        }
        if !again { return }
      }
    }
  }

  /// How many records wait for their place in the chain.
  public func pendingRecords() async throws -> Int {
    try await database.withConnection("counting waiting audit records") { connection in
      let rows = try await connection.query("SELECT count(*) FROM broker_audit_pending", logger: Self.quiet)
      for try await count in rows.decode(Int.self) { return count }
      return 0
    }
  }

  /// The newest record's sequence number and hash.
  public func head() async throws -> (sequence: Int, hash: String) {
    try await database.withConnection("reading the audit chain's head") { connection in
      let rows = try await connection.query(
        "SELECT sequence, hash FROM broker_audit_head WHERE id = 1", logger: Self.quiet)
      for try await (sequence, hash) in rows.decode((Int, String).self) { return (sequence, hash) }
      return (0, AuditLog.genesis)
    }
  }

  /// Writes the chain's records in order, as the JSON lines of an audit log file, `batch` at a time
  /// (bounded memory); returns how many were written.
  public func export(batch: Int = 1000, to write: @escaping @Sendable ([UInt8]) throws -> Void) async throws
    -> Int
  {
    try await chainPending()
    var after = 0
    var total = 0
    while true {
      let start = after
      let lines = try await database.withConnection("reading the audit chain") { connection in
        let rows = try await connection.query(
          "SELECT sequence, line FROM broker_audit WHERE sequence > \(start) ORDER BY sequence LIMIT \(batch)",
          logger: Self.quiet)
        var lines: [(Int, String)] = []
        for try await row in rows.decode((Int, String).self) { lines.append(row) }
        return lines
      }
      if lines.isEmpty { return total }
      for (sequence, line) in lines {
        try write(Array(line.utf8) + [UInt8(ascii: "\n")])
        after = sequence
        total += 1
      }
    }
  }

  static let quiet = Logger(label: "sixty.broker.store", factory: { _ in SwiftLogNoOpLogHandler() })

}
