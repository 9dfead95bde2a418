import Foundation
import PostgresNIO
import SixtyAudit
import SixtyPostgres
import Synchronization

/// A pushed key to accept: its replay claim, the key and its `accepted` record.
struct Acceptance: Sendable {
  var replayKey: String
  var signedAt: Date
  var forgetAt: Date
  var record: AuditRecord
  var key: KeyStore.Key
  var instance: String
  var user: String
}

/// A certificate to record: its replay claim and its `accepted` record, whose sequence number
/// becomes the certificate's serial.
struct Certification: Sendable {
  var replayKey: String
  var signedAt: Date
  var forgetAt: Date
  var record: AuditRecord
}

/// A key list to serve, and how to write the record of serving it.
struct Serving: Sendable {
  var instance: String
  var user: String
  var now: Date
  var record: @Sendable ([KeyStore.Key]) -> AuditRecord
}

/// One write of the shared broker state that ends in the audit chain.
enum ChainWrite: Sendable {
  case accept(Acceptance)
  case certify(Certification)
  case serve(Serving)
  case append(AuditRecord)

  var replayKey: String? {
    switch self {
    case .accept(let acceptance): acceptance.replayKey
    case .certify(let certification): certification.replayKey
    default: nil
    }
  }
}

enum ChainOutcome: Sendable, Equatable {
  case verdict(ReplayVerdict)
  /// The certificate's record's sequence number; nil when the request was a replay.
  case certified(Int?)
  case keys([KeyStore.Key])
  case appended
}

/// Group commit for the audit chain. Every write ends with a record after the chain's head, under
/// the head's row lock held to COMMIT, so one write at a time per database would cost a WAL flush
/// and two round trips under that lock each. Instead, writes that arrive while a transaction of
/// this replica is in flight wait for the next one, and each transaction carries all of them: their
/// replay claims, keys and reads first, then one lock on the head, one multi-row append and one
/// commit. Each write stays atomic with its record (they commit together or not at all), and the
/// chain stays one line across replicas.
///
/// When the server refuses a transaction of several writes (one write's values, a deadlock), each
/// of them is tried alone, so one bad write fails only itself; a lost connection or a deadline
/// fails the transaction's writes at once.
final class GroupCommitter: Sendable {
  typealias Waiter = (write: ChainWrite, continuation: CheckedContinuation<ChainOutcome, any Error>)

  struct State {
    var waiting: [Waiter] = []
    var running = 0
    /// Transactions committed, and the writes they carried.
    var transactions = 0
    var writes = 0
  }

  let database: SharedDatabase
  let maxPerSlot: Int
  /// The most writes in one transaction (bounds its time under the head's lock).
  let maximumBatch: Int
  /// Transactions of this replica in flight at once: while one holds the head's lock or waits for
  /// its commit, the next does its claims and reads.
  let pipelines: Int
  let state = Mutex(State())
  /// Told after a transaction that left records waiting for the chain. Set once, by the store's
  /// init, before any write can arrive.
  nonisolated(unsafe) var onPending: (@Sendable () -> Void)?

  init(database: SharedDatabase, maxPerSlot: Int, maximumBatch: Int = 128, pipelines: Int = 1) {
    self.database = database
    self.maxPerSlot = maxPerSlot
    self.maximumBatch = max(1, maximumBatch)
    self.pipelines = max(1, pipelines)
  }

  func submit(_ write: ChainWrite) async throws -> ChainOutcome {
    try await withCheckedThrowingContinuation { continuation in
      let start = state.withLock { state -> Bool in
        state.waiting.append((write, continuation))
        guard state.running < pipelines else { return false }
        state.running += 1
        return true
      }
      if start { Task { await self.drain() } }
    }
  }

  func drain() async {
    while true {
      let batch = state.withLock { state -> [Waiter] in
        if state.waiting.isEmpty {
          state.running -= 1
          return []
        }
        if state.waiting.count <= maximumBatch {
          defer { state.waiting = [] }
          return state.waiting
        }
        let batch = Array(state.waiting.prefix(maximumBatch))
        state.waiting.removeFirst(maximumBatch)
        return batch
      }
      if batch.isEmpty { return }
      await commit(batch)
    }
  }

  func commit(_ batch: [Waiter]) async {
    let writes = batch.map(\.write)
    let maxPerSlot = self.maxPerSlot
    do {
      let outcomes = try await database.transaction(Self.what(writes)) { connection in
        try await Self.execute(writes, maxPerSlot: maxPerSlot, on: connection)
      }
      if !writes.contains(where: { if case .certify = $0 { true } else { false } }) { onPending?() }
      state.withLock { state in
        state.transactions += 1
        state.writes += batch.count
      }
      for (waiter, outcome) in zip(batch, outcomes) { waiter.continuation.resume(returning: outcome) }
    } catch let failure as SharedDatabase.Failure where failure.refusedByServer && batch.count > 1 {
      for waiter in batch { await commit([waiter]) }
    } catch {
      for waiter in batch { waiter.continuation.resume(throwing: error) }
    }
  }

  static func what(_ writes: [ChainWrite]) -> String {
    guard writes.count == 1, let write = writes.first else {
      return "writing \(writes.count) requests and their records to the audit chain"
    }
    switch write {
    case .accept: return "accepting a pushed key"
    case .certify: return "recording a certificate"
    case .serve(let serving): return "reading the keys of \(serving.instance)"
    case .append: return "appending to the audit chain"
    }
  }

  /// The writes of one transaction, in order: replay claims (with their keys), then reads, then
  /// every record after the head.
  static func execute(_ writes: [ChainWrite], maxPerSlot: Int, on connection: PostgresConnection)
    async throws -> [ChainOutcome]
  {
    var outcomes = [ChainOutcome](repeating: .appended, count: writes.count)
    // Claims in the byte order of their keys: transactions of every replica wait for one another's
    // claims in one order, never in a cycle.
    let claims = writes.indices.compactMap { index -> (Int, String)? in
      writes[index].replayKey.map { (index, $0) }
    }.sorted { $0.1.utf8.lexicographicallyPrecedes($1.1.utf8) }
    var claimed = Set<[UInt8]>()
    for (index, key) in claims {
      let fresh: Bool
      if !claimed.insert(Array(key.utf8)).inserted {
        fresh = false
      } else if case .accept(let acceptance) = writes[index] {
        fresh = try await claim(acceptance, on: connection) == .fresh
      } else if case .certify(let certification) = writes[index] {
        fresh = try await claim(certification, on: connection)
      } else {
        fresh = false
      }
      if case .certify = writes[index] {
        outcomes[index] = .certified(fresh ? 0 : nil)
      } else {
        outcomes[index] = .verdict(fresh ? .fresh : .replayed)
      }
    }
    for index in writes.indices {
      if case .serve(let serving) = writes[index] {
        outcomes[index] = .keys(try await keys(serving, maxPerSlot: maxPerSlot, on: connection))
      }
    }
    var records: [(index: Int, record: AuditRecord)] = []
    for index in writes.indices {
      switch (writes[index], outcomes[index]) {
      case (.accept(let acceptance), .verdict(.fresh)): records.append((index, acceptance.record))
      case (.certify(let certification), .certified(.some)): records.append((index, certification.record))
      case (.serve(let serving), .keys(let keys)): records.append((index, serving.record(keys)))
      case (.append(let record), _): records.append((index, record))
      default: break
      }
    }
    // A certificate's serial is its record's sequence number: such a transaction chains its
    // records at once. Others leave them waiting, with no lock, for the next chaining pass.
    if records.contains(where: { outcomes[$0.index] == .certified(0) }) {
      let sequences = try await append(records.map(\.record), on: connection)
      for (position, entry) in records.enumerated() where outcomes[entry.index] == .certified(0) {
        outcomes[entry.index] = .certified(sequences[position])
      }
    } else if !records.isEmpty {
      let bodies = records.map(\.record.unchained)
      try await connection.query(
        "INSERT INTO broker_audit_pending (body) SELECT * FROM unnest(\(bodies)::text[])",
        logger: SharedBrokerStore.quiet)
    }
    return outcomes
  }

  /// Claims the replay key of a certificate; false when another transaction holds the claim.
  static func claim(_ certification: Certification, on connection: PostgresConnection) async throws -> Bool {
    let now = certification.record.time
    let rows = try await connection.query(
      """
      INSERT INTO broker_replays (key, signed_at, forget_at)
      VALUES (\(certification.replayKey), \(certification.signedAt), \(certification.forgetAt))
      ON CONFLICT (key) DO UPDATE SET signed_at = EXCLUDED.signed_at, forget_at = EXCLUDED.forget_at
        WHERE broker_replays.forget_at <= \(now)
      RETURNING 1
      """, logger: SharedBrokerStore.quiet)
    var fresh = false
    for try await _ in rows { fresh = true }
    return fresh
  }

  /// Claims the replay key and stores the key in one statement; `.replayed` (and nothing stored)
  /// when another transaction holds the claim. Like the record, the key is visible to other
  /// replicas only once the transaction commits.
  static func claim(_ acceptance: Acceptance, on connection: PostgresConnection) async throws -> ReplayVerdict
  {
    let key = acceptance.key
    let now = acceptance.record.time
    let rows = try await connection.query(
      """
      WITH claimed AS (
        INSERT INTO broker_replays (key, signed_at, forget_at)
        VALUES (\(acceptance.replayKey), \(acceptance.signedAt), \(acceptance.forgetAt))
        ON CONFLICT (key) DO UPDATE SET signed_at = EXCLUDED.signed_at, forget_at = EXCLUDED.forget_at
          WHERE broker_replays.forget_at <= \(now)
        RETURNING 1),
      stored AS (
        INSERT INTO broker_keys (instance, os_user, line, fingerprint, expires_at, request_id, principal, sources)
        SELECT \(acceptance.instance), \(acceptance.user), \(key.line), \(key.fingerprint), \(key.expiresAt),
          \(key.requestID), \(key.principal), \(key.from) FROM claimed)
      SELECT count(*) FROM claimed
      """, logger: SharedBrokerStore.quiet)
    var count = 0
    for try await value in rows.decode(Int.self) { count = value }
    return count > 0 ? .fresh : .replayed
  }

  /// The keys valid at the time of `serving`, newest last, at most `maxPerSlot`.
  static func keys(_ serving: Serving, maxPerSlot: Int, on connection: PostgresConnection) async throws
    -> [KeyStore.Key]
  {
    let rows = try await connection.query(
      """
      SELECT line, fingerprint, expires_at, request_id, principal, sources FROM broker_keys
      WHERE instance = \(serving.instance) AND os_user = \(serving.user) AND expires_at > \(serving.now)
      ORDER BY id DESC LIMIT \(maxPerSlot)
      """, logger: SharedBrokerStore.quiet)
    var keys: [KeyStore.Key] = []
    for try await (line, fingerprint, expiresAt, requestID, principal, sources) in rows.decode(
      (String, String, Date, String, String, [String]).self)
    {
      keys.append(
        KeyStore.Key(
          line: line, fingerprint: fingerprint, expiresAt: expiresAt, requestID: requestID,
          principal: principal, from: sources))
    }
    return keys.reversed()
  }

  /// Appends `records` after the head at once, under its row lock (`SharedBrokerStore.link`).
  static func append(_ records: [AuditRecord], on connection: PostgresConnection) async throws -> [Int] {
    guard !records.isEmpty else { return [] }
    let head = try await SharedBrokerStore.lockHead(on: connection)
    return try await SharedBrokerStore.link(records.map(\.unchained), after: head, on: connection)
  }
}
