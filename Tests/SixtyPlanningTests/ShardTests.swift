import Foundation
import SixtyCore
import SixtyPlanning
import Testing

@Suite struct ShardTests {
  let names = (1...40).map { "host-\($0)" }

  @Test func everyHostIsInExactlyOneShardAndTheSizesDifferByAtMostOne() {
    for count in [1, 2, 3, 4, 7, 40, 41] {
      let parts = (1...count).map { Shard(index: $0, count: count).members(of: names) }
      var seen: [String: Int] = [:]
      for part in parts { for name in part { seen[name, default: 0] += 1 } }
      #expect(seen.count == names.count, "\(count)")
      #expect(seen.values.allSatisfy { $0 == 1 }, "\(count)")
      let sizes = parts.map(\.count)
      #expect(sizes.max()! - sizes.min()! <= 1, "\(count): \(sizes)")
    }
  }

  @Test func thePartsDoNotDependOnTheInventorysOrder() {
    var generator = SystemRandomNumberGenerator()
    for index in 1...4 {
      let shard = Shard(index: index, count: 4)
      let first = shard.members(of: names)
      for _ in 0..<5 {
        #expect(shard.members(of: names.shuffled(using: &generator)) == first)
      }
    }
    #expect(Shard.ranked(names) == Shard.ranked(names.reversed()))
    // The rank is the SHA-256 of the name: a fixed order, not the inventory's.
    #expect(Shard.ranked(names) != names)
  }

  @Test func shardValuesAreCheckedWithSentencesNamingThem() {
    #expect((try? Shard(parsing: "2/4")) == Shard(index: 2, count: 4))
    #expect((try? Shard(parsing: "1000/1000")) == Shard(index: 1000, count: 1000))
    let cases: [(String, String)] = [
      ("0/4", "--shard '0/4' names shard 0 of 4 (shards count from 1)"),
      ("5/4", "--shard '5/4' names shard 5 of 4"),
      ("4", "--shard '4' is not of the form I/N"),
      ("a/4", "--shard 'a/4' does not hold two whole numbers"),
      ("1/-4", "does not hold two whole numbers"),
      ("1/0", "--shard '1/0' has 0 shards"),
      ("1/1001", "has 1001 shards"),
      ("1/4/2", "is not of the form I/N"),
      (" 1/4", "does not hold two whole numbers"),
    ]
    for (text, expected) in cases {
      do {
        _ = try Shard(parsing: text)
        Issue.record("\(text) was accepted")
      } catch {
        let message = error.diagnostics.map(\.message).joined()
        #expect(message.contains(expected), "\(message)")
        #expect(message.contains("expected I/N with 1 ≤ I ≤ N ≤ 1000"), "\(message)")
      }
    }
  }

  @Test func aShardPlansItsPartWithBatchesOfItsOwnAndTheWholeRunsThreshold() throws {
    var inventory = "hosts:\n"
    for name in names { inventory += "  \(name): {address: 10.0.0.1, instance_id: i-1, tags: {role: web}}\n" }
    let files = [
      "play.yml": """
      hosts: all
      policy:
        batches: [1, 50%]
        max_failures: 10%
      tasks:
        - {name: a, command: [uptime]}
      """,
      "inv.yml": inventory,
    ]
    var all: [String] = []
    for index in 1...4 {
      var options = PlanOptions(defaultUser: "ops")
      options.shard = Shard(index: index, count: 4)
      let (outcome, messages) = try plan(files, options: options)
      let plan = try #require(outcome.plan, "\(messages)")
      let play = try #require(plan.plays.first)
      #expect(plan.runTargets == 40)
      #expect(play.hosts.count == 10)
      // 10% of the run's 40 targets, not of the shard's 10.
      #expect(play.failureThreshold == 4)
      // Batches of the shard's own 10 hosts: 1, then 5 (50% of 10), then the rest.
      #expect(play.batches.map(\.count) == [1, 5, 4])
      all += play.hosts.map(\.host.name)
    }
    #expect(all.sorted() == names.sorted())
  }

  @Test func aRefusedHostRefusesEveryShardAsItWouldOneRunner() throws {
    let files = [
      "play.yml": "hosts: all\ntasks:\n  - {name: a, shell: x}\n",
      "inv.yml": fleet,
      "policy.yml": "hosts:\n  require_approval: [role=db]\n",
    ]
    for index in 1...3 {
      var options = PlanOptions(defaultUser: "ops")
      options.shard = Shard(index: index, count: 3)
      let (outcome, messages) = try plan(files, policy: "policy.yml", options: options)
      #expect(outcome.exitCode == 3, "shard \(index)")
      #expect(
        messages == [
          "play.yml:1:8: error: policy refuses host db-1 in play 'play 1': the host matches 'role=db', which requires --approve."
        ], "shard \(index)")
      // 7 hosts, 6 of them runnable: the threshold and the parts count all of them.
      #expect(outcome.plan?.runTargets == 7)
    }
  }
}
