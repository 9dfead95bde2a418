import Foundation
import InstanceConnect
import SixtyCore
import SixtyExecution
import SixtyKeys
import SixtyPlanning
import SixtyPlaybook
import SixtyScheduler

/// Pushes the run's public key through Instance Connect, paced by a token bucket shared by all
/// hosts (the client itself retries throttling with backoff and jitter).
final class InstanceConnectPusher: KeyPusher, @unchecked Sendable {
  let client: InstanceConnectClient
  let publicKey: String
  let instances: [String: (id: String, zone: String?)]
  // `lock` protects `bucket`.
  let lock = NSLock()
  var bucket: TokenBucket

  init(
    client: InstanceConnectClient, publicKey: String, instances: [String: (id: String, zone: String?)],
    rate: Double, burst: Int
  ) {
    self.client = client
    self.publicKey = publicKey
    self.instances = instances
    bucket = TokenBucket(rate: rate, burst: burst, now: Date().timeIntervalSince1970)
  }

  func push(host: ScheduledHost, completion: @escaping @Sendable (PushOutcome) -> Void) {
    guard let instance = instances[host.name] else {
      completion(.failed("the host has no instance_id"))
      return
    }
    Task {
      // Wait for a token: sleep exactly until the bucket has one (hosts waiting together each
      // re-check after their sleep, so none starves and none spins).
      while true {
        let wait: Double = lock.withLock {
          let now = Date().timeIntervalSince1970
          return bucket.take(now: now) ? 0 : max(0.001, bucket.delay(now: now))
        }
        if wait == 0 { break }
        try? await Task.sleep(for: .seconds(wait))
      }
      do {
        _ = try await client.sendSSHPublicKey(
          SendSSHPublicKeyRequest(
            instanceID: instance.id, osUser: host.user, publicKey: publicKey, availabilityZone: instance.zone)
        )
        completion(.pushed)
      } catch {
        completion(.failed("\(error)"))
      }
    }
  }
}

/// Turns a play's plan into the scheduler's hosts and the executor's targets.
enum RunPreparation {
  struct Prepared {
    var hosts: [ScheduledHost]
    var targets: [String: ExecutionTarget]
    var batches: [[Int]]
    var instances: [String: (id: String, zone: String?)]
    var taskNames: [String: [String]]
  }

  static func prepare(_ play: PlayPlan) -> Prepared {
    var hosts: [ScheduledHost] = []
    var targets: [String: ExecutionTarget] = [:]
    var instances: [String: (id: String, zone: String?)] = [:]
    var position: [Int: Int] = [:]
    var names: [String: [String]] = [:]
    for (planIndex, hostPlan) in play.hosts.enumerated() where hostPlan.batch != nil {
      let steps = hostPlan.steps.filter { $0.status == .run }
      var indexOfTask: [String: Int] = [:]
      for (i, step) in steps.enumerated() { indexOfTask[play.tasks[step.task].name] = i }
      var tasks: [ScheduledTask] = []
      var rendered: [RenderedTask?] = []
      var become: [String?] = []
      var okCodes: [[Int32]] = []
      for step in steps {
        let task = play.tasks[step.task]
        let onFailure: ScheduledTask.OnFailure =
          switch task.onFailure {
          case .abortHost: .abortHost
          case .continue: .continue
          case .abortRun: .abortRun
          }
        tasks.append(
          ScheduledTask(
            name: task.name, needs: task.needs.compactMap { indexOfTask[$0.name] }, onFailure: onFailure,
            retries: task.retries ?? play.policy.retries,
            retryDelay: (task.retryDelay ?? play.policy.retryDelay).seconds,
            timeout: (task.timeout ?? play.policy.taskTimeout).seconds))
        rendered.append(step.rendered)
        become.append(task.become ? (task.becomeUser ?? "root") : nil)
        okCodes.append(task.okCodes.isEmpty ? [0] : task.okCodes.map { Int32($0) })
      }
      position[planIndex] = hosts.count
      let name = hostPlan.host.name
      hosts.append(ScheduledHost(name: name, user: hostPlan.user, tasks: tasks))
      names[name] = tasks.map(\.name)
      targets[name] = ExecutionTarget(
        address: hostPlan.host.address, port: hostPlan.host.port, user: hostPlan.user,
        tasks: rendered.indices.map {
          ExecutionTask(rendered: rendered[$0], become: become[$0], okCodes: okCodes[$0])
        },
        sshOptions: hostPlan.host.sshOptions)
      if let id = hostPlan.host.instanceID { instances[name] = (id, hostPlan.host.zone) }
    }
    let batches = play.batches.map { $0.compactMap { position[$0] } }.filter { !$0.isEmpty }
    return Prepared(hosts: hosts, targets: targets, batches: batches, instances: instances, taskNames: names)
  }
}
