import Foundation
import SixtyPlanning
import SixtyProcess

/// One task of a host as the executor runs it: what to run, as whom, and which exit codes pass.
public struct ExecutionTask: Sendable {
  /// The task's command; nil when it has nothing to run.
  public var rendered: RenderedTask?
  /// Nil, or the user to become (root by default).
  public var become: String?
  public var okCodes: [Int32] = [0]
}

/// Where and how to reach one host, and what to run there.
public struct ExecutionTarget: Sendable {
  public var address: String
  public var port: Int
  public var user: String
  public var tasks: [ExecutionTask]
  /// `ssh -o` options for this host only (ProxyJump, ProxyCommand), each "Name=value".
  public var sshOptions: [String] = []
}

extension ExecutionTarget {
  /// The host of a play's plan, with the steps it runs (in plan order).
  public init(_ host: HostPlan, play: PlayPlan) {
    let tasks = host.steps.filter { $0.status == .run }.map { step in
      let task = play.tasks[step.task]
      return ExecutionTask(
        rendered: step.rendered, become: task.become ? (task.becomeUser ?? "root") : nil,
        okCodes: task.okCodes.isEmpty ? [0] : task.okCodes.map { Int32($0) })
    }
    self.init(
      address: host.host.address, port: host.host.port, user: host.user, tasks: tasks,
      sshOptions: host.host.sshOptions)
  }
}

/// What a finished task produced.
public struct TaskCapture: Sendable {
  public var host: String
  public var task: Int
  public var status: Int32
  public var stdout: CappedBuffer
  public var stderr: CappedBuffer
  public var started: Date
  public var ended: Date
}
