import Foundation
import InstanceConnect
import SixtyCore
import SixtyExecution
import SixtyKeys
import SixtyPlanning
import SixtyPlaybook
import SixtyScheduler

/// Pushes the run's public key through Instance Connect. The client's `AdaptivePacer`, shared by
/// every host of the run, paces the requests and follows the endpoint's throttling (the client
/// retries throttled pushes with backoff and jitter); a policy's `push.rate` adds a ceiling, a
/// token bucket shared by the play's hosts.
// @unchecked: `bucket`, the only mutable state, is behind `lock`; the rest is immutable.
final class InstanceConnectPusher: KeyPusher, @unchecked Sendable {
  let client: InstanceConnectClient
  let publicKey: String
  let instances: [String: (id: String, zone: String?)]
  // `lock` protects `bucket`.
  let lock = NSLock()
  var bucket: TokenBucket?
  /// Told of each push that moved on from a failed endpoint to another that answered.
  let onFailover: @Sendable (ScheduledHost, SendSSHPublicKeyResponse.Failover) -> Void
  /// Certificate mode: where each host's certificate goes (`SignSSHPublicKey` instead of a push).
  let certificateFile: (@Sendable (String) -> String?)?

  init(
    client: InstanceConnectClient, publicKey: String, instances: [String: (id: String, zone: String?)],
    ceiling: AdaptivePacer.Ceiling?, certificateFile: (@Sendable (String) -> String?)? = nil,
    onFailover: @escaping @Sendable (ScheduledHost, SendSSHPublicKeyResponse.Failover) -> Void = { _, _ in }
  ) {
    self.certificateFile = certificateFile
    self.client = client
    self.publicKey = publicKey
    self.instances = instances
    self.onFailover = onFailover
    bucket = ceiling.map { TokenBucket(rate: $0.rate, burst: $0.burst, now: Date().timeIntervalSince1970) }
  }

  func push(host: ScheduledHost, completion: @escaping @Sendable (PushOutcome) -> Void) {
    guard let instance = instances[host.name] else {
      completion(.failed("the host has no instance_id"))
      return
    }
    Task {
      // Wait for a token: sleep exactly until the bucket has one (hosts waiting together each
      // re-check after their sleep, so none starves and none spins).
      while true {
        let wait: Double = lock.withLock {
          guard var current = bucket else { return 0 }
          defer { bucket = current }
          let now = Date().timeIntervalSince1970
          return current.take(now: now) ? 0 : max(0.001, current.delay(now: now))
        }
        if wait == 0 { break }
        try? await Task.sleep(for: .seconds(wait))
      }
      let request = SendSSHPublicKeyRequest(
        instanceID: instance.id, osUser: host.user, publicKey: publicKey, availabilityZone: instance.zone)
      do {
        let response: SendSSHPublicKeyResponse
        if let certificateFile {
          guard let path = certificateFile(host.name) else {
            completion(.failed("internal error: no certificate file for the host"))
            return
          }
          response = try await client.signSSHPublicKey(request)
          try Self.write(response.certificate ?? "", to: path)
        } else {
          response = try await client.sendSSHPublicKey(request)
        }
        if let failover = response.failover { onFailover(host, failover) }
        completion(.pushed)
      } catch {
        completion(.failed("\(error)"))
      }
    }
  }

  struct WriteFailure: Error, CustomStringConvertible {
    var description: String
  }

  /// Writes the certificate line (0600) through a temporary file renamed over `path`, so ssh never
  /// reads half of one.
  static func write(_ certificate: String, to path: String) throws {
    let temporary = path + ".tmp"
    guard
      FileManager.default.createFile(
        atPath: temporary, contents: Data((certificate + "\n").utf8), attributes: [.posixPermissions: 0o600])
    else {
      throw WriteFailure(description: "cannot write the certificate to \(temporary)")
    }
    guard rename(temporary, path) == 0 else {
      throw WriteFailure(
        description: "cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
    }
  }
}
