import Foundation
import Testing

/// `sixty push` against moto, an independent AWS implementation, with signature checking on.
@Suite(.serialized) struct MotoPushTests {
  @Test(.enabled(if: MotoServer.available, "moto_server is not installed (make test installs it)"))
  func pushIsSignedAndAWrongSecretIsRefused() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-moto-\(UUID().uuidString)")
      .path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let moto = try MotoServer(directory: dir)
    defer { moto.stop() }
    let port = moto.port
    let parts = [moto.accessKeyID, moto.secretAccessKey]
    let keygen = try runProgram(
      "/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "moto", "-f", dir + "/k"])
    #expect(keygen.status == 0)
    let arguments = [
      "push", "--instance-id", "i-0123456789abcdef0", "--os-user", "ec2-user", "--public-key", dir + "/k.pub",
      "--endpoint", "http://127.0.0.1:\(port)", "--region", "us-east-1",
    ]
    var env = [
      "AWS_ACCESS_KEY_ID": parts[0], "AWS_SECRET_ACCESS_KEY": parts[1], "AWS_EC2_METADATA_DISABLED": "true",
    ]
    let ok = try SixtyBinary.run(arguments, environment: env)
    #expect(ok.status == 0, "\(ok.stderr)")
    #expect(ok.stdout.hasPrefix("request id: "))
    env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
    let bad = try SixtyBinary.run(arguments, environment: env)
    #expect(bad.status == 3)
    #expect(
      bad.stderr.contains(
        "The request signature was rejected by http://127.0.0.1:\(port) (SignatureDoesNotMatch)"))
    #expect(bad.stderr.contains("check the secret access key"))
    #expect(!bad.stderr.contains(parts[1]))
    // The generated-key form prints where the private key is and when the key expires.
    env["AWS_SECRET_ACCESS_KEY"] = parts[1]
    env["SIXTY_KEY_DIR"] = dir
    let generated = try SixtyBinary.run(
      [
        "push", "--instance-id", "i-0123456789abcdef0", "--os-user", "ec2-user", "--generate", "--endpoint",
        "http://127.0.0.1:\(port)",
      ],
      environment: env)
    #expect(generated.status == 0, "\(generated.stderr)")
    let lines = generated.stdout.split(separator: "\n")
    #expect(lines.count == 3)
    let keyPath = lines.count > 1 ? String(lines[1].dropFirst("private key: ".count)) : ""
    #expect(keyPath.hasPrefix(dir + "/sixty-run-"))
    var info = stat()
    #expect(stat(keyPath, &info) == 0 && info.st_mode & 0o777 == 0o600)
    #expect(lines.count > 2 && lines[2].hasPrefix("expires: "))
  }
}
