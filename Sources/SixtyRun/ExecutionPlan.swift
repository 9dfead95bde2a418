import SixtyExecution
import SixtyPlanning
import SixtyScheduler

/// One play made ready to execute: the scheduler's hosts and batches, the executor's targets, and
/// the instances to push keys to, all derived from the play's plan.
struct ExecutionPlan {
  var hosts: [ScheduledHost]
  var targets: [String: ExecutionTarget]
  var batches: [[Int]]
  var instances: [String: (id: String, zone: String?)]
  var taskNames: [String: [String]]

  init(_ play: PlayPlan) {
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
      }
      position[planIndex] = hosts.count
      let name = hostPlan.host.name
      hosts.append(ScheduledHost(name: name, user: hostPlan.user, tasks: tasks))
      names[name] = tasks.map(\.name)
      targets[name] = ExecutionTarget(hostPlan, play: play)
      if let id = hostPlan.host.instanceID { instances[name] = (id, hostPlan.host.zone) }
    }
    let batches = play.batches.map { $0.compactMap { position[$0] } }.filter { !$0.isEmpty }
    self.hosts = hosts
    self.targets = targets
    self.batches = batches
    self.instances = instances
    self.taskNames = names
  }
}

extension ExecutionPlan {
  /// The users ssh logs in as (from `ssh -G`) for the hosts whose user the inventory and `-u`
  /// leave unset: the key is pushed for them, and the report names them.
  mutating func use(users: [String: String]) {
    guard !users.isEmpty else { return }
    for index in hosts.indices {
      if let user = users[hosts[index].name] { hosts[index].user = user }
    }
    for (name, user) in users { targets[name]?.user = user }
  }
}
