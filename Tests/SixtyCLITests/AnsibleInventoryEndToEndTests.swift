import Foundation
import Testing

/// Real runs over Ansible inventories: pushes, logins and commands on a local fleet.
@Suite struct AnsibleInventoryEndToEndTests {
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func execRunsOverAnAnsibleINIInventoryWithAPattern() throws {
    try withLocalFleet(LocalFleet(count: 3)) { fleet in
      var text = "[fleet]\n"
      for host in fleet.hosts {
        text +=
          "\(host.name) ansible_host=\(host.address) ansible_port=\(host.port) instance_id=\(host.instanceID) greeting='hello from'\n"
      }
      text += "[fleet:vars]\nansible_user=\(fleet.user)\n[canary]\n\(fleet.hosts[0].name)\n"
      let path = fleet.directory + "/hosts.ini"
      try text.write(toFile: path, atomically: true, encoding: .utf8)
      let result = try SixtyBinary.run(
        [
          "exec", "fleet:!canary", "-i", path, "--endpoint", fleet.endpoint, "--no-progress", "--", "echo",
          "{{ greeting }}", "{{ host.name }}",
        ],
        environment: fleet.environment)
      #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
      for host in fleet.hosts.dropFirst() {
        #expect(result.stdout.contains("\(host.name) | hello from \(host.name)"), "\(result.stdout)")
      }
      #expect(!result.stdout.contains("\(fleet.hosts[0].name) |"), "\(result.stdout)")
    }
  }
}
