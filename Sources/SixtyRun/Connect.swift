import Foundation
import InstanceConnect

extension ConnectSettings {
  /// Checks that the AWS profile named by `--profile` (or `AWS_PROFILE`) exists; called before
  /// anything else is read or contacted, so a typo is reported as such.
  /// - Throws: `RunFailure` (bad input) naming the profile and the files looked in.
  public func checkProfile() throws(RunFailure) {
    do {
      try CredentialChain(profile: profile).checkProfile()
    } catch {
      throw RunFailure(error.description, status: error.exitStatus)
    }
  }

  /// Resolves credentials and region and builds the Instance Connect client. The credentials
  /// are fetched once here, so a profile that cannot give any fails before the first host;
  /// temporary ones are renewed by the client before they expire.
  /// - Throws: `RunFailure` for an unusable endpoint, region or credentials.
  public func client() async throws(RunFailure) -> InstanceConnectClient {
    do {
      let chain = CredentialChain(profile: profile)
      try chain.checkProfile()
      let urls = try endpoints(chain: chain)
      // A custom endpoint (broker, moto) needs a region only for the signature scope.
      guard let region = chain.region(explicit: region) ?? (urls.isEmpty ? nil : "us-east-1") else {
        throw InstanceConnectError.noRegion
      }
      let provider = try await chain.provider()
      _ = try await provider.credentials()
      return InstanceConnectClient(region: region, credentials: provider, endpoints: urls)
    } catch let error as RunFailure {
      throw error
    } catch let error as InstanceConnectError {
      throw RunFailure(error.description, status: error.exitStatus)
    } catch {
      throw RunFailure("\(error)", status: .badInput)
    }
  }
}

extension ConnectSettings {
  /// The explicit Instance Connect endpoints, in order: `--endpoint` (or `--endpoint-url`), else
  /// `AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`; one
  /// URL or several separated by commas. Empty: AWS's regional endpoint.
  /// - Throws: `RunFailure` (bad input) naming the item that is not an http(s) URL and where the
  ///   list came from.
  public func endpoints(chain: CredentialChain? = nil) throws(RunFailure) -> [URL] {
    let chain = chain ?? CredentialChain(profile: profile)
    guard let text = chain.endpoint(explicit: endpoint) else { return [] }
    let source = chain.endpointSource(
      explicit: endpoint, explicitName: "The endpoint", service: "ec2_instance_connect")
    do {
      return try EndpointList.parse(text, source: source)
    } catch {
      throw RunFailure(error.description, status: .badInput)
    }
  }
}

extension InstanceConnectError {
  /// Bad input exits 2; a refusal by the service exits 3; anything else 1.
  public var exitStatus: ExitStatus {
    switch self {
    case .invalidParameter, .noRegion, .unknownProfile, .noCredentials, .credentials: .badInput
    case .service(let error), .credentialService(_, let error):
      switch error.kind {
      case .notAuthorized, .signature, .unknownAccessKey, .expiredCredentials: .refused
      case .invalidArguments, .instanceNotFound: .badInput
      default: .hostsFailed
      }
    case .transport, .allEndpointsFailed: .hostsFailed
    }
  }
}
