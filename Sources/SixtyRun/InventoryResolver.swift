import Foundation
import InstanceConnect
import SixtyCore
import SixtyEC2
import SixtyPlanning
import SixtyPlaybook

/// Loads the inventory of `inputs`; an `aws-ec2` one is resolved by `DescribeInstances`.
public enum InventoryResolver {
  public static func load(_ inputs: PlanLoader.Inputs, ec2 options: EC2Settings, profile: String? = nil) async
    -> PlanLoader.Inputs
  {
    guard let path = inputs.inventoryPath else { return inputs }
    let (loaded, diagnostics) = InventoryParser.load(path: path)
    guard let loaded, let source = loaded.ec2 else { return inputs }
    var copy = inputs
    do {
      let (hosts, more) = try await resolve(source, options: options, profile: profile)
      copy.resolvedInventory = (loaded.resolved(hosts: hosts), diagnostics + more)
    } catch {
      copy.resolvedInventory = (
        loaded,
        diagnostics + [
          .error("cannot list the EC2 instances of this inventory: \(error)", at: source.location)
        ]
      )
    }
    return copy
  }

  public static func client(for source: EC2InventorySource, options: EC2Settings, profile: String?)
    async throws
    -> EC2Client
  {
    let chain = CredentialChain(profile: profile)
    guard let region = source.region ?? chain.region() else {
      throw EC2Error("no region: set 'region' in the inventory, AWS_REGION, or a profile's region")
    }
    // The EC2 endpoint: --ec2-endpoint (or --endpoint-url), the inventory's, then as the AWS CLI
    // finds it: AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, the profile's endpoint_url.
    let endpointText = options.endpoint ?? source.endpoint ?? chain.endpoint(explicit: nil, service: "ec2")
    var endpoint: URL?
    if let endpointText {
      guard let url = URL(string: endpointText), url.scheme == "http" || url.scheme == "https" else {
        throw EC2Error("the EC2 endpoint '\(endpointText)' is not an http(s) URL")
      }
      endpoint = url
    }
    let provider: any AWSCredentialsProvider
    do {
      provider = try await chain.provider()
      _ = try await provider.credentials()
    } catch {
      throw EC2Error("\(error)")
    }
    return EC2Client(region: region, credentials: provider, endpoint: endpoint)
  }

  static func resolve(_ source: EC2InventorySource, options: EC2Settings, profile: String?) async throws -> (
    [InventoryHost], [Diagnostic]
  ) {
    let client = try await client(for: source, options: options, profile: profile)
    let (instances, _) = try await EC2Inventory.instances(
      for: source, client: client, cacheDirectory: EC2Inventory.defaultCacheDirectory(),
      readCache: !options.refresh,
      pageSize: options.pageSize)
    return EC2Inventory.hosts(instances, source: source, region: client.region)
  }
}
