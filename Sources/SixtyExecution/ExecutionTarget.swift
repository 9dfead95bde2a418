import Foundation
import SixtyPlanning
import SixtyProcess

/// One task of a host as the executor runs it: what to run, as whom, and which exit codes pass.
public struct ExecutionTask: Sendable {
  /// The task's command; nil when it has nothing to run.
  public var rendered: RenderedTask?
  /// Nil, or the user to become (root by default).
  public var become: String?
  public var okCodes: [Int32]

  public init(rendered: RenderedTask?, become: String? = nil, okCodes: [Int32] = [0]) {
    self.rendered = rendered
    self.become = become
    self.okCodes = okCodes
  }
}

/// Where and how to reach one host, and what to run there.
public struct ExecutionTarget: Sendable {
  public var address: String
  public var port: Int
  public var user: String
  public var tasks: [ExecutionTask]
  /// `ssh -o` options for this host only (ProxyJump, ProxyCommand), each "Name=value".
  public var sshOptions: [String] = []

  public init(address: String, port: Int, user: String, tasks: [ExecutionTask], sshOptions: [String] = []) {
    self.address = address
    self.port = port
    self.user = user
    self.tasks = tasks
    self.sshOptions = sshOptions
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
