import ArgumentParser
import Foundation
import InstanceConnect
import SixtyKeys
import SixtyRun

/// Where and as whom to call EC2 Instance Connect (AWS, the broker, or another compatible endpoint).
struct ConnectOptions: ParsableArguments {
  @Option(
    name: .long,
    help: """
      The Instance Connect endpoint URL (e.g. a sixty broker), or several separated by commas (broker \
      replicas, tried in order: the next on a connection error, a timeout or an HTTP 5xx answer); \
      default: AWS for the region.
      """
  )
  var endpoint: String?

  @Option(
    name: .customLong("endpoint-url"),
    help: """
      As the AWS CLI spells it: the Instance Connect endpoint (like --endpoint, which wins; a list \
      separated by commas too), and, for commands that read an aws-ec2 inventory, the EC2 endpoint \
      (the first of a list) unless --ec2-endpoint or the inventory sets one. STS and SSO endpoints come \
      from AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL_SSO.
      """)
  var endpointURL: String?

  @Option(
    name: .long, help: "The AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, or the profile's region).")
  var region: String?

  @Option(name: .long, help: "The AWS profile in ~/.aws/credentials and ~/.aws/config.")
  var profile: String?

  func validate() throws {
    for (flag, value) in [("--endpoint", endpoint), ("--endpoint-url", endpointURL)] {
      guard let value else { continue }
      do {
        _ = try EndpointList.parse(value, source: flag)
      } catch {
        throw ValidationError(error.description)
      }
    }
  }

  var settings: ConnectSettings {
    ConnectSettings(endpoint: endpoint ?? endpointURL, region: region, profile: profile)
  }

  /// The EC2 endpoint `--endpoint-url` names: its first URL (EC2 calls do not fail over).
  var ec2EndpointURL: String? {
    guard let endpointURL else { return nil }
    return (try? EndpointList.parse(endpointURL, source: "--endpoint-url"))?.first?.absoluteString
  }
}

struct PushCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "push",
    abstract: "Push an SSH public key to an instance through EC2 Instance Connect (or a sixty broker).",
    discussion: """
      Prints the request id. With --generate, makes a fresh key pair, pushes its public half, and prints \
      the private key's path and the time the key stops being accepted; the key directory is yours to delete.
      """)

  @Option(name: .long, help: "The instance id (i-…).")
  var instanceID: String

  @Option(name: .long, help: "The OS user the key is for.")
  var osUser: String?

  @Option(name: .long, help: "A public key file (.pub).")
  var publicKey: String?

  @Flag(name: .long, help: "Generate a new key pair and push its public key.")
  var generate = false

  @Option(name: .long, help: "The key type for --generate: ed25519 (default), ecdsa, rsa, rsa4096.")
  var keyType: String = "ed25519"

  @Option(name: .long, help: "The instance's availability zone.")
  var zone: String?

  @Flag(name: .long, help: "Push for the EC2 serial console (SendSerialConsoleSSHPublicKey) instead.")
  var serialConsole = false

  @OptionGroup var connect: ConnectOptions

  func validate() throws {
    guard (publicKey == nil) != !generate else {
      throw ValidationError("Pass exactly one of --public-key FILE or --generate.")
    }
    if !serialConsole && osUser == nil {
      throw ValidationError("--os-user is required (except with --serial-console).")
    }
    guard KeyType(parsing: keyType) != nil else {
      throw ValidationError(
        "The key type '\(keyType)' is not supported; expected ed25519, ecdsa, rsa or rsa4096.")
    }
  }

  func run() async throws {
    var request = PushRequest(
      instanceID: instanceID, osUser: osUser,
      key: publicKey.map(PushRequest.Key.file) ?? .generate(KeyType(parsing: keyType)!))
    request.zone = zone
    request.serialConsole = serialConsole
    request.connect = connect.settings
    let result = try await KeyPush.perform(request)
    if let failover = result.failover {
      FileHandle.standardError.write(Data((ServiceError.plain(failover.text, limit: 4000) + "\n").utf8))
    }
    print("request id: \(result.requestID)")
    if let (path, expiry) = result.generated {
      print("private key: \(path)")
      print("expires: \(expiry.formatted(.iso8601)) (AWS accepts a pushed key for 60 seconds)")
    }
  }
}

/// An error that ends a command with a sentence on stderr and a documented exit code.
struct CLIError: Error, CustomStringConvertible {
  var message: String
  var code: Int32
  init(_ message: String, code: Int32) {
    self.message = message
    self.code = code
  }
  var description: String { message }
}
