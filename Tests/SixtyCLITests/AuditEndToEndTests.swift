import Foundation
import Testing

/// `sixty broker serve` holds its audit log alone and signs its head at shutdown; `sixty audit
/// verify` checks that signature.
@Suite(.serialized) struct AuditEndToEndTests {
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd (make test installs them)"))
  func secondBrokerOnOneAuditLogIsRefusedAndShutdownSignsTheHead() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      // One audited request (an agent fetch for an unknown instance is refused and recorded).
      if let curl = LocalProcess.which("curl") {
        _ = try runProgram(
          curl, ["-s", "-o", "/dev/null", fleet.endpoint + "/agent/v1/keys?instance_id=i-nope&user=ops"])
      }
      // The second broker either exits (refused) or writes its port file (it serves: the bug).
      let portFile = fleet.directory + "/second.port"
      let second = try LocalProcess(
        SixtyBinary.path,
        [
          "broker", "serve", "--config", fleet.directory + "/broker.yml", "--listen", "127.0.0.1:0",
          "--port-file", portFile,
        ], logPath: fleet.directory + "/second.log")
      defer { second.stop() }
      var listening = false
      for _ in 0..<400 where second.isRunning {
        if FileManager.default.fileExists(atPath: portFile) {
          listening = true
          break
        }
        usleep(50_000)
      }
      #expect(!listening, "a second broker serves with the same audit log: \(second.log)")
      second.stop()
      #expect(second.exitStatus == 2)
      #expect(
        second.log.contains(
          "the audit log '\(fleet.auditPath)' is in use by another broker (pid \(fleet.broker.pid))"),
        "\(second.log)")
      #expect(fleet.broker.isRunning, "the first broker keeps running")
      // SIGTERM: graceful shutdown writes the last checkpoint.
      fleet.broker.stop()
      #expect(fleet.broker.exitStatus == 0, "\(fleet.broker.log)")
      let records = ((try? String(contentsOfFile: fleet.auditPath, encoding: .utf8)) ?? "").split(
        separator: "\n"
      ).count
      let verify = try SixtyBinary.run([
        "audit", "verify", fleet.auditPath, "--broker-config", fleet.directory + "/broker.yml",
      ])
      #expect(verify.status == 0, "\(verify.stderr)")
      #expect(
        verify.stdout.contains("ok, \(records) record") && verify.stdout.contains("chain intact")
          && verify.stdout.contains("head signed at record \(records) at ")
          && verify.stdout.contains("(signature verified)"),
        "\(verify.stdout)")
      // Cut the last record off: the signed head shows it.
      if records > 0 {
        let text = try String(contentsOfFile: fleet.auditPath, encoding: .utf8)
        let kept = text.split(separator: "\n").dropLast().map { $0 + "\n" }.joined()
        try kept.write(toFile: fleet.auditPath, atomically: false, encoding: .utf8)
        let truncated = try SixtyBinary.run([
          "audit", "verify", fleet.auditPath, "--public-key", fleet.brokerPublicKey,
        ])
        #expect(truncated.status == 1)
        #expect(truncated.stderr.contains("records were removed from its end"), "\(truncated.stderr)")
      }
    }
  }
}
