import SixtyCore
import SixtyPolicy

/// One play: a set of hosts and the task graph to run on each of them.
public struct Play: Sendable {
  public var name: String
  public var hosts: HostSelector
  public var hostsLocation: SourceLocation
  public var vars: [String: Value]
  public var policy: Policy?
  public var tasks: [PlaybookTask]
  public var graph: TaskGraph
  public var location: SourceLocation
}

/// A parsed playbook: plays run in order.
public struct Playbook: Sendable {
  public var path: String
  public var plays: [Play]
}
