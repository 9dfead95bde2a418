import Crypto
import Testing

@testable import InstanceConnect

/// The derived-key table gives exactly the key the derivation gives, per secret and scope.
@Suite struct SigningKeyCacheTests {
  func bytes(_ key: SymmetricKey) -> [UInt8] { key.withUnsafeBytes { Array($0) } }

  @Test func cachedKeysAreTheDerivedOnesForEachSecretAndScope() {
    let scopes = [
      ("20150830", "us-east-1", "service"), ("20150831", "us-east-1", "service"),
      ("20150830", "eu-west-1", "service"), ("20150830", "us-east-1", "ec2-instance-connect"),
    ]
    for secret in ["wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "another-secret"] {
      for (date, region, service) in scopes {
        let derived = SigV4.signingKey(secret: secret, date: date, region: region, service: service)
        for _ in 0..<2 {  // the second comes from the table
          let cached = SigV4.cachedSigningKey(secret: secret, date: date, region: region, service: service)
          #expect(bytes(cached) == bytes(derived), "\(date) \(region) \(service)")
        }
      }
    }
    let a = SigV4.cachedSigningKey(secret: "one", date: "20150830", region: "us-east-1", service: "service")
    let b = SigV4.cachedSigningKey(secret: "two", date: "20150830", region: "us-east-1", service: "service")
    #expect(bytes(a) != bytes(b))
    // The published vector's derived key (AWS's SigV4 documentation).
    let documented = SigV4.cachedSigningKey(
      secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", date: "20150830", region: "us-east-1",
      service: "iam")
    #expect(
      SigV4.hex(bytes(documented)) == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
  }
}
