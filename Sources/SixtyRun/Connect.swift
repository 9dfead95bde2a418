import Foundation
import InstanceConnect

extension ConnectSettings {
  /// Resolves credentials and region and builds the Instance Connect client.
  /// - Throws: `RunFailure` for an unusable endpoint, region or credentials.
  public func client() async throws(RunFailure) -> InstanceConnectClient {
    do {
      let chain = CredentialChain(profile: profile)
      var url: URL?
      if let text = chain.endpoint(explicit: endpoint) {
        guard let parsed = URL(string: text), let scheme = parsed.scheme, ["http", "https"].contains(scheme),
          parsed.host != nil
        else {
          throw RunFailure(
            "The endpoint '\(text)' (from the environment or the AWS config) is not an http(s) URL.",
            status: .badInput)
        }
        url = parsed
      }
      // A custom endpoint (broker, moto) needs a region only for the signature scope.
      guard let region = chain.region(explicit: region) ?? (url != nil ? "us-east-1" : nil) else {
        throw InstanceConnectError.noRegion
      }
      let credentials = try await chain.resolve()
      return InstanceConnectClient(region: region, credentials: credentials, endpoint: url)
    } catch let error as RunFailure {
      throw error
    } catch let error as InstanceConnectError {
      throw RunFailure(error.description, status: error.exitStatus)
    } catch {
      throw RunFailure("\(error)", status: .badInput)
    }
  }
}

extension InstanceConnectError {
  /// Bad input exits 2; a refusal by the service exits 3; anything else 1.
  public var exitStatus: ExitStatus {
    switch self {
    case .invalidParameter, .noRegion, .unknownProfile, .noCredentials: .badInput
    case .service(let error):
      switch error.kind {
      case .notAuthorized, .signature, .unknownAccessKey, .expiredCredentials: .refused
      case .invalidArguments, .instanceNotFound: .badInput
      default: .hostsFailed
      }
    case .transport: .hostsFailed
    }
  }
}
