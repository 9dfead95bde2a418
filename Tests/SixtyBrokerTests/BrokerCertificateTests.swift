import Foundation
import InstanceConnect
import SixtyAudit
import SixtyKeys
import Testing

@testable import SixtyBroker

/// `SignSSHPublicKey`: the broker as a certificate authority, under the same checks as pushes.
extension BrokerTests {
  func authority() throws -> CertificateAuthority {
    var settings = BrokerConfig.Certificates(caKeyFile: directory + "/ca.key")
    settings.revokedKeysFile = directory + "/revoked.krl"
    return try CertificateAuthority.load(settings)
  }

  @Test func aCertificateNamesItsHostUserSourcesAndAuditRecord() throws {
    let authority = try authority()
    let broker = try broker(authority: authority)
    let response = broker.handle(request(pushBody(), operation: "SignSSHPublicKey"))
    #expect(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    let line = try #require(object["Certificate"] as? String)
    let serial = try #require(object["SerialNumber"] as? Int)
    #expect(line.hasPrefix("ssh-ed25519-cert-v01@openssh.com "))
    // The audit record comes first; its sequence number is the serial, its request id the key id.
    let records = try String(contentsOfFile: directory + "/audit.jsonl", encoding: .utf8).split(
      separator: "\n")
    let last = try #require(records.last)
    let record = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
    #expect(record["event"] as? String == "certificate" && record["outcome"] as? String == "accepted")
    #expect(record["seq"] as? Int == serial)
    // What ssh-keygen reads in it.
    let file = directory + "/cert.pub"
    try (line + "\n").write(toFile: file, atomically: true, encoding: .utf8)
    let listed = try Self.keygen(["-L", "-f", file])
    let requestID = try #require(object["RequestId"] as? String)
    #expect(listed.contains("Key ID: \"\(requestID)\""), "\(listed)")
    #expect(listed.contains("Serial: \(serial)"), "\(listed)")
    #expect(listed.contains("ops@\(Self.web)"), "\(listed)")
    #expect(listed.contains("source-address 127.0.0.0/8,::1"), "\(listed)")
    // Backdated 5 s for clock skew; valid for the key TTL (60 s).
    let after = try #require(object["ValidAfter"] as? Int)
    let before = try #require(object["ValidBefore"] as? Int)
    #expect(
      after == Int(clock.now.timeIntervalSince1970) - 5 && before == Int(clock.now.timeIntervalSince1970) + 60
    )
    // Nothing is pushed to the agents' list.
    #expect(broker.store.count(now: clock.now) == 0)
  }

  @Test func certificatesFollowThePoliciesRepliesAndRatesOfPushes() throws {
    let broker = try broker(burst: 2, authority: try authority())
    // A user the principal may not use, a host outside its policy: refused and audited.
    #expect(broker.handle(request(pushBody(user: "root"), operation: "SignSSHPublicKey")).status == 403)
    #expect(broker.handle(request(pushBody(instance: Self.db), operation: "SignSSHPublicKey")).status == 403)
    // A replay of an accepted request.
    let first = request(pushBody(), operation: "SignSSHPublicKey")
    #expect(broker.handle(first).status == 200)
    #expect(broker.handle(first).status == 403)
    // The principal's rate (1/s, burst 2): the third certificate in one second is throttled.
    clock.advance(1)
    var statuses: [Int] = []
    let other = try SSHKeyPair.generate(.ecdsaP256).authorizedKey
    for (user, publicKey) in [("ops", nil), ("deploy", nil), ("ops", other)] {
      let answer = broker.handle(request(pushBody(user: user, key: publicKey), operation: "SignSSHPublicKey"))
      statuses.append(answer.status)
      if answer.status == 400 {
        #expect(answer.headers.contains { $0.value == "ThrottlingException" })
      }
    }
    #expect(statuses == [200, 200, 400], "\(statuses)")
  }

  @Test func aBrokerThatIsNoAuthoritySaysSoAndTheCapabilitiesTellRunners() throws {
    let plain = try broker()
    let refused = plain.handle(request(pushBody(), operation: "SignSSHPublicKey"))
    #expect(refused.status == 400)
    #expect(String(decoding: refused.body, as: UTF8.self).contains("does not sign certificates"))
    let capabilities = try #require(
      EndpointCapabilities.parse(
        plain.handle(
          BrokerRequest(
            method: "GET", path: "/sixty/v1/capabilities", headers: [], body: [], remoteAddress: nil)
        ).body))
    #expect(capabilities.preferredKeyType == "ecdsa-sha2-nistp256")
    #expect(!capabilities.operations.contains("SignSSHPublicKey") && capabilities.preferredLogin == "key")
    let authority = try broker(auditFile: "second.jsonl", authority: try authority())
    let signs = try #require(
      EndpointCapabilities.parse(
        authority.handle(
          BrokerRequest(
            method: "GET", path: "/sixty/v1/capabilities", headers: [], body: [], remoteAddress: nil)
        ).body))
    #expect(signs.operations.contains("SignSSHPublicKey"))
  }

  @Test func revokedSerialsAreWrittenAsAKRLThatSSHKeygenReads() throws {
    let authority = try authority()
    let broker = try broker(authority: authority)
    let response = broker.handle(request(pushBody(), operation: "SignSSHPublicKey"))
    let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    let file = directory + "/cert.pub"
    try ((object["Certificate"] as? String ?? "") + "\n").write(
      toFile: file, atomically: true, encoding: .utf8)
    let serial = UInt64(try #require(object["SerialNumber"] as? Int))
    #expect(try authority.revoke([serial + 5], now: clock.now) == [serial + 5])
    #expect(try Self.keygenStatus(["-Q", "-f", directory + "/revoked.krl", file]) == 0)
    #expect(try authority.revoke([serial], now: clock.now) == [serial, serial + 5])
    #expect(try Self.keygenStatus(["-Q", "-f", directory + "/revoked.krl", file]) != 0)
    #expect(try authority.revokedSerials() == [serial, serial + 5])
    #expect(throws: CertificateAuthority.Failure.self) { try authority.revoke([0], now: self.clock.now) }
  }

  static func keygen(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
  }

  static func keygenStatus(_ arguments: [String]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
  }
}
