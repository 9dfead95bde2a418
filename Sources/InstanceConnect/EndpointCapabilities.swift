import Foundation
import Synchronization

/// What a `sixty broker` says it takes, at `GET /sixty/v1/capabilities` (unauthenticated, a fixed
/// answer): the key types it accepts, the one it prefers, its operations and how its hosts prefer
/// logins. AWS and other Instance Connect endpoints do not answer it, and are taken to accept
/// what AWS documents.
public struct EndpointCapabilities: Sendable, Equatable {
  public var service: String
  /// OpenSSH key type names (`ecdsa-sha2-nistp256`, `ssh-ed25519`, `ssh-rsa`).
  public var keyTypes: [String]
  public var preferredKeyType: String?
  /// `SendSSHPublicKey`, `SignSSHPublicKey`, …
  public var operations: [String]
  /// `key` (pushed keys) or `certificate` (its hosts trust its certificate authority).
  public var preferredLogin: String?

  public init(
    service: String, keyTypes: [String], preferredKeyType: String?, operations: [String],
    preferredLogin: String?
  ) {
    self.service = service
    self.keyTypes = keyTypes
    self.preferredKeyType = preferredKeyType
    self.operations = operations
    self.preferredLogin = preferredLogin
  }

  public static let path = "/sixty/v1/capabilities"
  /// The most of an answer that is read.
  public static let maximumBody = 16 * 1024

  /// The answer's JSON.
  public var json: [UInt8] {
    var object: [String: Any] = [
      "service": service, "key_types": keyTypes, "operations": operations,
    ]
    if let preferredKeyType { object["preferred_key_type"] = preferredKeyType }
    if let preferredLogin { object["preferred_login"] = preferredLogin }
    return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
  }

  /// Reads an answer; nil unless it is a JSON object naming a service and its key types as
  /// short printable ASCII strings.
  public static func parse(_ body: [UInt8]) -> EndpointCapabilities? {
    guard body.count <= maximumBody,
      let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
      let service = object["service"] as? String, isName(service),
      let keyTypes = object["key_types"] as? [String], keyTypes.count <= 16, keyTypes.allSatisfy(isName)
    else { return nil }
    let operations = (object["operations"] as? [String] ?? []).filter(isName).prefix(32)
    let preferred = (object["preferred_key_type"] as? String).flatMap { isName($0) ? $0 : nil }
    let login = (object["preferred_login"] as? String).flatMap {
      $0 == "key" || $0 == "certificate" ? $0 : nil
    }
    return EndpointCapabilities(
      service: service, keyTypes: keyTypes, preferredKeyType: preferred, operations: Array(operations),
      preferredLogin: login)
  }

  /// `request`'s answer, or nil after `timeout` seconds whether or not the transport gives up
  /// (a task group would wait for a send that ignores cancellation).
  static func send(_ request: HTTPRequest, transport: any HTTPTransport, timeout: Double) async
    -> HTTPResponse?
  {
    let waiter = Waiter()
    let finish: @Sendable (HTTPResponse?) -> Void = { answer in
      waiter.state.withLock { continuation in
        continuation?.resume(returning: answer)
        continuation = nil
      }
    }
    return await withCheckedContinuation { continuation in
      waiter.state.withLock { $0 = continuation }
      let sender = Task { finish(try? await transport.send(request)) }
      Task {
        try? await Task.sleep(for: .seconds(timeout))
        finish(nil)
        sender.cancel()
      }
    }
  }

  final class Waiter: Sendable {
    let state = Mutex<CheckedContinuation<HTTPResponse?, Never>?>(nil)
  }

  static func isName(_ text: String) -> Bool {
    !text.isEmpty && text.utf8.count <= 64
      && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") }
  }

  /// Asks each endpoint in turn (within `timeout` seconds each) and returns the first answer;
  /// nil when none answers with one (AWS, moto, an older broker).
  public static func ask(
    _ endpoints: [URL], transport: any HTTPTransport, timeout: Double = 2
  ) async -> EndpointCapabilities? {
    for endpoint in endpoints.prefix(8) {
      guard var components = URLComponents(url: endpoint, resolvingAgainstBaseURL: false) else { continue }
      components.path = path
      components.query = nil
      guard let url = components.url else { continue }
      let request = HTTPRequest(url: url, method: "GET", headers: [("Accept", "application/json")], body: [])
      let answer = await Self.send(request, transport: transport, timeout: timeout)
      guard let answer else { continue }
      if answer.status == 200, let capabilities = parse(answer.body) { return capabilities }
      // It answered, without capabilities: not a sixty broker; the others are its replicas.
      if answer.status < 500 { return nil }
    }
    return nil
  }
}
