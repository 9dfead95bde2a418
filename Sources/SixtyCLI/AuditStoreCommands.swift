import ArgumentParser
import Foundation
import Logging
import SixtyAudit
import SixtyBroker
import SixtyPostgres

/// `sixty audit verify --store` and `sixty audit export`: the audit chain of broker replicas in
/// their database.
enum AuditStoreCommands {
  static func openStore(_ url: String) async throws -> SharedBrokerStore {
    do {
      let location = try PostgresLocation.parse(url, origin: "--store")
      return try await SharedBrokerStore.open(location, logger: Logger(label: "sixty.audit"))
    } catch let error as PostgresLocation.Failure {
      throw CLIError(error.description, code: 2)
    } catch {
      throw CLIError("\(error)", code: 2)
    }
  }

  /// Writes the chain to `path` (0600), or to standard output.
  static func export(_ url: String, to path: String?) async throws {
    let store = try await openStore(url)
    defer { store.database.close() }
    let fd: Int32 = path.map { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) } ?? STDOUT_FILENO
    guard fd >= 0 else {
      throw CLIError("cannot create \(path ?? "-"): \(String(cString: strerror(errno))).", code: 2)
    }
    defer { if path != nil { close(fd) } }
    do {
      _ = try await store.export { line in try writeAll(fd, line, path: path ?? "standard output") }
    } catch let error as CLIError {
      throw error
    } catch {
      throw CLIError("\(error)", code: 2)
    }
  }

  /// Verifies the chain in the database: each record against the one before it, and the last
  /// against the chain's head row (records removed from the end show there).
  static func verify(_ url: String) async throws {
    let store = try await openStore(url)
    defer { store.database.close() }
    let directory = try PrivateTemporaryDirectory.temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let file = directory + "/audit.jsonl"
    let location = store.database.location.description
    do {
      let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
      guard fd >= 0 else {
        throw CLIError("cannot create \(file): \(String(cString: strerror(errno))).", code: 2)
      }
      defer { close(fd) }
      // The head first: records appended while reading come after it and are not checked.
      let head = try await store.head()
      _ = try await store.export { line in try writeAll(fd, line, path: file) }
      let summary: AuditVerifier.Summary
      do {
        summary = try AuditVerifier.verify(path: file)
      } catch let error as AuditError {
        FileHandle.standardError.write(
          Data(
            "\(location)\(error.line.map { ": record \($0)" } ?? ""): error: \(error.message.replacingOccurrences(of: file, with: location))\n"
              .utf8))
        throw ExitCode(error.chainBroken ? 1 : 2)
      }
      guard summary.records >= head.sequence else {
        FileHandle.standardError.write(
          Data(
            "\(location): error: the chain ends at record \(summary.records), but its head row names record \(head.sequence): records were removed from its end.\n"
              .utf8))
        throw ExitCode(1)
      }
      print(
        "\(location): ok, \(summary.records) record\(summary.records == 1 ? "" : "s"), chain intact, head \(summary.head) (appends are serialised in the database; its head row matches)."
      )
    }
  }

  static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
    var done = 0
    while done < bytes.count {
      let written = bytes[done...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
      if written < 0 && errno == EINTR { continue }
      guard written > 0 else {
        throw CLIError("cannot write to \(path): \(String(cString: strerror(errno))).", code: 2)
      }
      done += written
    }
  }
}

/// A private temporary directory (0700).
enum PrivateTemporaryDirectory {
  static func temporaryDirectory() throws -> String {
    var template = Array((NSTemporaryDirectory() + "/sixty-audit-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else {
      throw CLIError("cannot create a temporary directory: \(String(cString: strerror(errno))).", code: 2)
    }
    return String(cString: made)
  }
}
