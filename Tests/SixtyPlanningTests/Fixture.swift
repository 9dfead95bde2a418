import Foundation
import SixtyCore
import SixtyPlanning
import SixtyPlaybook

/// A temporary folder of YAML files, loaded through the same path as `sixty plan`.
struct Fixture {
  let dir: String

  init(_ files: [String: String]) throws {
    dir =
      FileManager.default.temporaryDirectory.appendingPathComponent("sixty-fixture-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    for (name, content) in files {
      let path = dir + "/" + name
      try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      try content.write(toFile: path, atomically: true, encoding: .utf8)
    }
  }

  func remove() { try? FileManager.default.removeItem(atPath: dir) }

  func load(
    playbook: String = "play.yml", inventory: String? = "inv.yml", policy: String? = nil,
    options: PlanOptions = PlanOptions(defaultUser: "ops")
  ) -> PlanLoader.Outcome {
    PlanLoader.load(
      PlanLoader.Inputs(
        playbookPath: dir + "/" + playbook, inventoryPath: inventory.map { dir + "/" + $0 },
        policyPath: policy.map { dir + "/" + $0 }, options: options))
  }

  /// Diagnostics as printed, with the folder stripped so file names read `play.yml:3:5`.
  func messages(_ outcome: PlanLoader.Outcome) -> [String] {
    outcome.diagnostics.map { $0.description.replacingOccurrences(of: dir + "/", with: "") }
  }
}

/// Loads `files` (play.yml, inv.yml, …), returns the outcome and its messages, then cleans up.
func plan(
  _ files: [String: String], policy: String? = nil, options: PlanOptions = PlanOptions(defaultUser: "ops")
) throws -> (PlanLoader.Outcome, [String]) {
  let fixture = try Fixture(files)
  defer { fixture.remove() }
  let outcome = fixture.load(policy: policy, options: options)
  return (outcome, fixture.messages(outcome))
}

let fleet = """
  hosts:
    web-1: {address: 10.0.0.1, instance_id: i-00000000000000001, tags: {role: web, env: prod}}
    web-2: {address: 10.0.0.2, instance_id: i-00000000000000002, tags: {role: web, env: prod}}
    web-3: {address: 10.0.0.3, instance_id: i-00000000000000003, tags: {role: web, env: prod}}
    web-4: {address: 10.0.0.4, instance_id: i-00000000000000004, tags: {role: web, env: prod}}
    web-5: {address: 10.0.0.5, instance_id: i-00000000000000005, tags: {role: web, env: prod}}
    db-1: {address: 10.0.1.1, user: postgres, instance_id: i-00000000000000006, tags: {role: db, env: prod}}
    dev-1: {address: 10.0.2.1, instance_id: i-00000000000000007, tags: {role: web, env: dev}}
  groups:
    web: {match: "role=web,env=prod"}
    db: {hosts: [db-1]}
  """
