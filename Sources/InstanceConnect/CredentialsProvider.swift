import Foundation

/// Where a signed call gets its credentials: asked before every request, so temporary
/// credentials (an assumed role, SSO, a container or instance role) can be renewed during a run
/// that outlives them.
public protocol AWSCredentialsProvider: Sendable {
  /// Credentials valid now (and for a few minutes more when they expire).
  /// - Throws: `InstanceConnectError` when no credentials can be had.
  func credentials() async throws(InstanceConnectError) -> AWSCredentials
}

/// Long-term credentials are their own provider.
extension AWSCredentials: AWSCredentialsProvider {
  public func credentials() async throws(InstanceConnectError) -> AWSCredentials { self }
}

/// Temporary credentials fetched by `fetch` and kept until `refreshBefore` seconds before their
/// `expiration`; credentials without an expiration are kept for good. Concurrent callers share one
/// fetch in flight, so a thousand pushes at the moment of expiry cause one STS call.
public actor RefreshingCredentials: AWSCredentialsProvider {
  public typealias Fetch = @Sendable () async throws(InstanceConnectError) -> AWSCredentials

  let fetch: Fetch
  let clock: @Sendable () -> Date
  let refreshBefore: TimeInterval
  var cached: AWSCredentials?
  var inFlight: Task<Result<AWSCredentials, InstanceConnectError>, Never>?

  /// How long before `Expiration` credentials are renewed: the AWS SDKs use 5 to 15 minutes; a
  /// request signed just before expiry may reach AWS just after it, and a push must not fail
  /// for that.
  public static let defaultRefreshBefore: TimeInterval = 5 * 60

  /// - Parameters:
  ///   - refreshBefore: renew this many seconds before the credentials expire.
  ///   - clock: the time now; tests pass a manual one.
  ///   - fetch: gets fresh credentials (an STS call, a process, a metadata request).
  public init(
    refreshBefore: TimeInterval = defaultRefreshBefore, clock: @escaping @Sendable () -> Date = { Date() },
    fetch: @escaping Fetch
  ) {
    self.fetch = fetch
    self.clock = clock
    self.refreshBefore = refreshBefore
  }

  public func credentials() async throws(InstanceConnectError) -> AWSCredentials {
    if let cached, !needsRefresh(cached) { return cached }
    let task: Task<Result<AWSCredentials, InstanceConnectError>, Never>
    if let inFlight {
      task = inFlight
    } else {
      let fetch = self.fetch
      task = Task {
        do throws(InstanceConnectError) {
          return .success(try await fetch())
        } catch {
          return .failure(error)
        }
      }
      inFlight = task
    }
    let result = await task.value
    if inFlight == task { inFlight = nil }
    let fresh = try result.get()
    cached = fresh
    return fresh
  }

  func needsRefresh(_ credentials: AWSCredentials) -> Bool {
    guard let expiration = credentials.expiration else { return false }
    return clock().addingTimeInterval(refreshBefore) >= expiration
  }
}
