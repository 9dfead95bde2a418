import Foundation
import SixtyCore
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
  /// The inventory's name for the host: ssh's destination when it can be one (see
  /// `SSHClientOption.isDestination`), so `Host` blocks of ssh_config match it; the address
  /// then goes in `-o HostName=`.
  public var name: String?
  /// Whether the inventory (or `-u`) set the user; if not, ssh is given no `-l`, and `user` is
  /// the one `ssh -G` says ssh logs in as (what the key is pushed for).
  public var userIsSet = true
  /// Whether the inventory set the port; if not, ssh is given no `-p`.
  public var portIsSet = true

  public init(
    address: String, port: Int, user: String, tasks: [ExecutionTask], sshOptions: [String] = [],
    name: String? = nil, userIsSet: Bool = true, portIsSet: Bool = true
  ) {
    self.address = address
    self.port = port
    self.user = user
    self.tasks = tasks
    self.sshOptions = sshOptions
    self.name = name
    self.userIsSet = userIsSet
    self.portIsSet = portIsSet
  }

  /// What ssh is told to connect to: the host's name, or its address when the name cannot be a
  /// destination or none is known.
  public var destination: String {
    if let name, SSHClientOption.isDestination(name) { return name }
    return Self.bare(address)
  }

  /// `HostName=ADDRESS` when the destination is the name and the inventory gave another address
  /// (with no address of its own, ssh_config's `HostName` for the name applies). `%` is doubled:
  /// ssh expands `%` tokens in HostName.
  var hostNameOption: String? {
    guard let name, SSHClientOption.isDestination(name), address != name else { return nil }
    return "HostName=" + Self.bare(address).replacingOccurrences(of: "%", with: "%%")
  }

  /// An address without the brackets of an IPv6 literal.
  static func bare(_ address: String) -> String {
    let bytes = address.utf8
    guard bytes.first == UInt8(ascii: "["), bytes.last == UInt8(ascii: "]"), bytes.count > 2 else {
      return address
    }
    return String(decoding: bytes.dropFirst().dropLast(), as: UTF8.self)
  }
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
      sshOptions: host.host.sshOptions, name: host.host.name, userIsSet: host.host.user != nil,
      portIsSet: host.host.portIsSet)
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
