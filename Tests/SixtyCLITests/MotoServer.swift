import Foundation
import Testing

/// A `moto_server` on 127.0.0.1 with request signature checking on, and an IAM user allowed to
/// call `ec2-instance-connect:SendSSHPublicKey`.
final class MotoServer: @unchecked Sendable {
  static var available: Bool { LocalProcess.which("moto_server") != nil }

  let port: Int
  let process: LocalProcess
  let accessKeyID: String
  let secretAccessKey: String
  var endpoint: String { "http://127.0.0.1:\(port)" }

  /// Starts moto with logs under `directory`; the first three calls (user, policy, key) are free,
  /// every later call must be signed by a known key and pass IAM authorization.
  /// With `checkSignatures` false, moto accepts any request (signed or not, by any key): for calls
  /// made with the temporary credentials moto's own STS hands out, which its signature check
  /// does not know.
  init(
    directory: String, actions: [String] = ["ec2-instance-connect:SendSSHPublicKey"],
    checkSignatures: Bool = true
  ) throws {
    port = LocalProcess.freePort()
    var environment = ["AWS_EC2_METADATA_DISABLED": "true"]
    // moto checks signatures only when INITIAL_NO_AUTH_ACTION_COUNT is set (the first N calls
    // are free); left unset, it checks nothing.
    if checkSignatures { environment["INITIAL_NO_AUTH_ACTION_COUNT"] = "3" }
    process = try LocalProcess(
      LocalProcess.which("moto_server")!, ["-H", "127.0.0.1", "-p", "\(port)"],
      environment: environment, logPath: directory + "/moto-\(port).log")
    guard LocalProcess.waitForPort(port) else {
      process.stop()
      throw Failure("moto did not start: \(process.log)")
    }
    guard checkSignatures else {
      accessKeyID = "AKIAANYKEYATALL00000"
      secretAccessKey = "any-secret"
      return
    }
    let bootstrap = """
      import boto3, json, sys
      iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                         aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
      iam.create_user(UserName="sixty")
      iam.put_user_policy(UserName="sixty", PolicyName="push", PolicyDocument=json.dumps({
          "Version": "2012-10-17",
          "Statement": [{"Effect": "Allow", "Action": json.loads(sys.argv[2]), "Resource": "*"}]}))
      key = iam.create_access_key(UserName="sixty")["AccessKey"]
      print(key["AccessKeyId"], key["SecretAccessKey"])
      """
    let actionList = "[" + actions.map { "\"\($0)\"" }.joined(separator: ",") + "]"
    let made = try runProgram(
      LocalProcess.which("python3")!, ["-c", bootstrap, "http://127.0.0.1:\(port)", actionList])
    let parts = made.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
    guard made.status == 0, parts.count == 2 else {
      process.stop()
      throw Failure("cannot create moto credentials: \(made.stderr)")
    }
    accessKeyID = parts[0]
    secretAccessKey = parts[1]
  }

  /// Environment for `sixty` to sign as the moto user.
  var environment: [String: String] {
    [
      "AWS_ACCESS_KEY_ID": accessKeyID, "AWS_SECRET_ACCESS_KEY": secretAccessKey,
      "AWS_EC2_METADATA_DISABLED": "true",
    ]
  }

  func stop() { process.stop() }

  struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
  }
}
