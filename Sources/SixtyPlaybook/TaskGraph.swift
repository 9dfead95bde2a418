import SixtyCore

/// The dependency graph of one play's tasks: a DAG checked for cycles and unknown names.
public struct TaskGraph: Sendable, Hashable {
  /// Task names in file order.
  public var names: [String]
  /// For each task (by file index), the indices of the tasks it needs.
  public var dependencies: [[Int]]
  /// A stable topological order: among ready tasks, the earliest in the file runs first.
  public var order: [Int]

  /// Builds the graph, reporting unknown dependencies (with a suggestion) and cycles (naming them).
  /// A dependency on one of the `unreadable` tasks (reported already) is dropped silently.
  public static func build(_ tasks: [PlaybookTask], unreadable: Set<String> = [], reader: inout NodeReader)
    -> TaskGraph?
  {
    var index: [String: Int] = [:]
    for (i, task) in tasks.enumerated() where index[task.name] == nil { index[task.name] = i }
    var dependencies: [[Int]] = Array(repeating: [], count: tasks.count)
    var ok = true
    for (i, task) in tasks.enumerated() {
      for dependency in task.needs {
        guard let target = index[dependency.name] else {
          if unreadable.contains(dependency.name) { continue }
          reader.error(
            "the task '\(task.name)' needs '\(dependency.name)', which is not a task of this play\(Suggestion.hint(for: dependency.name, in: tasks.map(\.name))).",
            at: dependency.location)
          ok = false
          continue
        }
        if target == i {
          reader.error(
            "the task '\(task.name)' needs itself; expected the names of other tasks.",
            at: dependency.location)
          ok = false
          continue
        }
        if !dependencies[i].contains(target) { dependencies[i].append(target) }
      }
    }
    guard ok else { return nil }
    if let cycle = findCycle(dependencies) {
      let names = (cycle + [cycle[0]]).map { "'\(tasks[$0].name)'" }.joined(separator: " -> ")
      let first = cycle.min()!
      let location =
        tasks[first].needs.first { index[$0.name].map(cycle.contains) ?? false }?.location
        ?? tasks[first].location
      reader.error(
        "the tasks form a dependency cycle: \(names); expected 'needs' to form no loop.", at: location)
      return nil
    }
    return TaskGraph(
      names: tasks.map(\.name), dependencies: dependencies, order: topologicalOrder(dependencies))
  }

  /// Kahn's algorithm, always taking the ready task that comes first in the file.
  static func topologicalOrder(_ dependencies: [[Int]]) -> [Int] {
    let count = dependencies.count
    var remaining = dependencies.map(\.count)
    var dependents: [[Int]] = Array(repeating: [], count: count)
    for (i, deps) in dependencies.enumerated() { for d in deps { dependents[d].append(i) } }
    var ready = MinHeap()
    for i in 0..<count where remaining[i] == 0 { ready.push(i) }
    var order: [Int] = []
    order.reserveCapacity(count)
    while let next = ready.pop() {
      order.append(next)
      for dependent in dependents[next] {
        remaining[dependent] -= 1
        if remaining[dependent] == 0 { ready.push(dependent) }
      }
    }
    return order
  }

  /// One cycle, as task indices in dependency order starting from its earliest task, or nil.
  static func findCycle(_ dependencies: [[Int]]) -> [Int]? {
    var state = [UInt8](repeating: 0, count: dependencies.count)  // 0 new, 1 on stack, 2 done
    var stack: [Int] = []
    func visit(_ node: Int) -> [Int]? {
      state[node] = 1
      stack.append(node)
      for next in dependencies[node] {
        if state[next] == 1 {
          let start = stack.firstIndex(of: next)!
          var cycle = Array(stack[start...])
          // Present the cycle in "a needs b needs c" order, starting at its earliest task.
          let rotate = cycle.firstIndex(of: cycle.min()!)!
          cycle = Array(cycle[rotate...] + cycle[..<rotate])
          return cycle
        }
        if state[next] == 0, let cycle = visit(next) { return cycle }
      }
      stack.removeLast()
      state[node] = 2
      return nil
    }
    for node in dependencies.indices where state[node] == 0 {
      if let cycle = visit(node) { return cycle }
    }
    return nil
  }
}

/// A small binary min-heap of task indices.
struct MinHeap {
  private var items: [Int] = []

  mutating func push(_ value: Int) {
    items.append(value)
    var child = items.count - 1
    while child > 0 {
      let parent = (child - 1) / 2
      if items[parent] <= items[child] { break }
      items.swapAt(parent, child)
      child = parent
    }
  }

  mutating func pop() -> Int? {
    guard !items.isEmpty else { return nil }
    let top = items[0]
    let last = items.removeLast()
    if !items.isEmpty {
      items[0] = last
      var parent = 0
      while true {
        let left = 2 * parent + 1
        let right = left + 1
        var smallest = parent
        if left < items.count && items[left] < items[smallest] { smallest = left }
        if right < items.count && items[right] < items[smallest] { smallest = right }
        if smallest == parent { break }
        items.swapAt(parent, smallest)
        parent = smallest
      }
    }
    return top
  }
}
