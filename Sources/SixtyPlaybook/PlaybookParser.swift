import Foundation
import SixtyCore
import SixtyPolicy

/// Reads playbook files: one play as a mapping, or several plays as a list.
public enum PlaybookParser {

  static let playKeys = ["name", "hosts", "vars", "policy", "tasks"]
  static let taskKeys = [
    "name", "command", "shell", "script", "upload", "needs", "become", "become_user", "env", "cwd", "timeout",
    "retries", "retry_delay", "ok_codes", "on_failure", "when", "run_once",
  ]
  static let actionKeys = ["command", "shell", "script", "upload"]

  /// Loads and checks the playbook at `path`; returns nil when it has errors.
  public static func load(path: String) -> (Playbook?, [Diagnostic]) {
    check(YAMLLoader.load(path: path), path: path)
  }

  /// Checks a playbook held in memory (`sixty exec`'s), named `path` in diagnostics.
  public static func load(text: String, path: String) -> (Playbook?, [Diagnostic]) {
    check(YAMLLoader.parse(text: text, file: path), path: path)
  }

  /// The playbook at `path` as far as it could be read, errors or not, with every diagnostic.
  ///
  /// Parsing recovers per play and per task: a task with a bad field keeps its other fields, a
  /// task or play that cannot be read is left out (and what needs it does not need it), so later
  /// stages (targets, variables) can still check the rest. Such a playbook must never run: use it
  /// only when the diagnostics have errors, to find more of them.
  public static func loadRecovering(path: String) -> (Playbook?, [Diagnostic]) {
    check(YAMLLoader.load(path: path), path: path, recover: true)
  }

  /// `loadRecovering(path:)` for a playbook held in memory.
  public static func loadRecovering(text: String, path: String) -> (Playbook?, [Diagnostic]) {
    check(YAMLLoader.parse(text: text, file: path), path: path, recover: true)
  }

  static func check(_ loaded: (YAMLNode?, [Diagnostic]), path: String, recover: Bool = false)
    -> (Playbook?, [Diagnostic])
  {
    let empty = Diagnostic.error(
      "the playbook is empty; expected a play (a mapping with 'hosts' and 'tasks') or a list of plays.",
      at: SourceLocation(file: path, line: 1, column: 1))
    guard recover else {
      return NodeReader.read(loaded, empty: empty) { root, reader in parse(root, path: path, reader: &reader)
      }
    }
    let (root, diagnostics) = loaded
    guard let root else { return (nil, diagnostics.isEmpty ? [empty] : diagnostics) }
    var reader = NodeReader()
    reader.diagnostics.append(contentsOf: diagnostics)
    let playbook = parse(root, path: path, reader: &reader)
    return (playbook, reader.diagnostics.all)
  }

  public static func parse(_ root: YAMLNode, path: String, reader: inout NodeReader) -> Playbook {
    let baseDirectory = URL(fileURLWithPath: path).deletingLastPathComponent().path
    var plays: [Play] = []
    let playNodes: [YAMLNode]
    switch root.content {
    case .mapping: playNodes = [root]
    case .sequence(let items):
      playNodes = items
      if items.isEmpty {
        reader.error("the playbook has no plays; expected at least one.", at: root.location)
      }
    case .scalar:
      reader.error(
        "expected a play (a mapping with 'hosts' and 'tasks') or a list of plays, found \(root.kindDescription).",
        at: root.location)
      playNodes = []
    }
    var playNames: [String: SourceLocation] = [:]
    for (index, node) in playNodes.enumerated() {
      if let play = parsePlay(
        node, index: index, count: playNodes.count, baseDirectory: baseDirectory, reader: &reader)
      {
        if let previous = playNames[play.name], playNodes.count > 1 {
          reader.warning(
            "another play is also named '\(play.name)' (line \(previous.line)); reports will be hard to read.",
            at: play.location)
        }
        playNames[play.name] = play.location
        plays.append(play)
      }
    }
    return Playbook(path: path, plays: plays)
  }

  static func parsePlay(
    _ node: YAMLNode, index: Int, count: Int, baseDirectory: String, reader: inout NodeReader
  ) -> Play? {
    let what = count > 1 ? "play \(index + 1)" : "the play"
    guard reader.mapping(node, what, allowed: playKeys) != nil else { return nil }
    let name = node["name"].flatMap { reader.string($0, "the play's 'name'") } ?? "play \(index + 1)"
    var selector: HostSelector?
    var hostsLocation = node.location
    if let hostsNode = node["hosts"] {
      hostsLocation = hostsNode.location
      if let entries = reader.stringList(hostsNode, "'hosts'") {
        if entries.isEmpty {
          reader.error(
            "'hosts' is an empty list; expected a selector like 'all', 'web' or 'role=web'.",
            at: hostsNode.location)
        }
        do {
          selector = try HostSelector(union: entries.map(\.0))
        } catch {
          // Point at the entry that failed.
          var failed = entries.first?.1 ?? hostsNode.location
          for (text, location) in entries where (try? HostSelector(parsing: text)) == nil {
            failed =
              hostsNode.items == nil
              ? hostsNode.location(ofCharacter: error.offset) : location.advanced(by: error.offset)
            break
          }
          reader.error(error.message, at: failed)
        }
      }
    } else {
      reader.error(
        "\(what) ('\(name)') has no 'hosts'; expected a selector like 'all', 'web' or 'role=web'.",
        at: node.location)
    }
    let vars = node["vars"].map { InventoryParser.variables($0, "the play's 'vars'", reader: &reader) } ?? [:]
    let policy = node["policy"].map { PolicyParser.parse($0, what: "the play's 'policy'", reader: &reader) }
    var tasks: [PlaybookTask] = []
    // Tasks that could not be read: a task that needs one is not also reported.
    var unreadable = Set<String>()
    if let tasksNode = node["tasks"] {
      if let items = reader.list(tasksNode, of: "tasks", for: "'tasks'") {
        var names: [String: SourceLocation] = [:]
        for (i, item) in items.enumerated() {
          guard let task = parseTask(item, index: i, baseDirectory: baseDirectory, reader: &reader) else {
            if let name = item["name"]?.scalar { unreadable.insert(name) }
            continue
          }
          guard
            reader.isFirst(
              task.name, at: task.location, in: &names,
              else: {
                "the task name '\(task.name)' is used twice in this play (first at line \($0.line), column \($0.column)); expected unique names."
              })
          else { continue }
          tasks.append(task)
        }
        if items.isEmpty {
          reader.error("'tasks' is empty; expected at least one task.", at: tasksNode.location)
        }
      }
    } else {
      reader.error("\(what) ('\(name)') has no 'tasks'; expected a list of tasks.", at: node.location)
    }
    // A play whose 'needs' do not form a DAG still has its tasks checked, in file order.
    let graph =
      TaskGraph.build(tasks, unreadable: unreadable, reader: &reader)
      ?? TaskGraph(
        names: tasks.map(\.name), dependencies: Array(repeating: [], count: tasks.count),
        order: Array(tasks.indices))
    guard let selector else { return nil }
    return Play(
      name: name, hosts: selector, hostsLocation: hostsLocation, vars: vars, policy: policy, tasks: tasks,
      graph: graph, location: node.location)
  }

  static func parseTask(_ node: YAMLNode, index: Int, baseDirectory: String, reader: inout NodeReader)
    -> PlaybookTask?
  {
    guard let pairs = reader.mapping(node, "task \(index + 1)", allowed: taskKeys) else { return nil }
    guard let nameNode = node["name"] else {
      reader.error(
        "task \(index + 1) has no 'name'; expected a unique name for each task.", at: node.location)
      return nil
    }
    guard let name = reader.string(nameNode, "the task's 'name'") else { return nil }
    let actions = pairs.filter { actionKeys.contains($0.key) }
    guard let actionPair = actions.first else {
      reader.error(
        "the task '\(name)' has no action; expected one of: \(actionKeys.joined(separator: ", ")).",
        at: node.location)
      return nil
    }
    if actions.count > 1 {
      reader.error(
        "the task '\(name)' has more than one action ('\(actions[0].key)' and '\(actions[1].key)'); expected exactly one.",
        at: actions[1].keyLocation)
      return nil
    }
    guard let action = parseAction(actionPair, task: name, baseDirectory: baseDirectory, reader: &reader)
    else { return nil }
    var task = PlaybookTask(name: name, action: action, location: nameNode.location)
    for pair in pairs {
      let value = pair.value
      switch pair.key {
      case "needs":
        task.needs = (reader.stringList(value, "'needs' of task '\(name)'") ?? []).map {
          PlaybookTask.Dependency(name: $0.0, location: $0.1)
        }
      case "become":
        task.become = reader.bool(value, "'become' of task '\(name)'") ?? false
      case "become_user":
        if let user = reader.string(value, "'become_user' of task '\(name)'") {
          if InventoryParser.checkUser(user, value.location, &reader) {
            task.becomeUser = user
            task.become = true
          }
        }
      case "env":
        for entry in reader.mapping(value, "'env' of task '\(name)'") ?? [] {
          if !SafeText.isEnvironmentName(entry.key) {
            reader.error(
              "\(SafeText.quoted(entry.key)) is not a valid environment variable name; expected ASCII letters, digits and '_', not starting with a digit.",
              at: entry.keyLocation)
            continue
          }
          guard case .scalar = entry.value.content else {
            reader.error(
              "expected a string for env '\(entry.key)', found \(entry.value.kindDescription).",
              at: entry.value.location)
            continue
          }
          if let template = Template(node: entry.value, reader: &reader) {
            task.env.append((entry.key, template))
          }
        }
      case "cwd":
        if reader.string(value, "'cwd' of task '\(name)'") != nil {
          task.cwd = Template(node: value, reader: &reader)
        }
      case "timeout":
        if let span = reader.timeSpan(value, "'timeout' of task '\(name)'") {
          if span.milliseconds == 0 {
            reader.error("'timeout' of task '\(name)' must be longer than zero.", at: value.location)
          } else {
            task.timeout = span
          }
        }
      case "retries":
        task.retries = reader.int(value, "'retries' of task '\(name)'", range: 0...100)
      case "retry_delay":
        task.retryDelay = reader.timeSpan(value, "'retry_delay' of task '\(name)'")
      case "ok_codes":
        let items = value.items ?? [value]
        task.okCodes = items.compactMap {
          reader.int($0, "each entry of 'ok_codes' of task '\(name)'", range: 0...255)
        }
      case "on_failure":
        let known = FailurePolicy.allCases.map(\.rawValue)
        task.onFailure =
          reader.string(value, "'on_failure' of task '\(name)'", as: FailurePolicy.init(rawValue:)) {
            "unknown on_failure '\($0)' for task '\(name)'\(Suggestion.hint(for: $0, in: known)); expected one of: \(known.joined(separator: ", "))."
          } ?? task.onFailure
      case "when":
        if let text = reader.string(value, "'when' of task '\(name)'") {
          switch Condition.parse(text, at: value) {
          case .success(let condition):
            task.when = condition
            task.whenText = text
          case .failure(let error):
            reader.error("invalid condition for task '\(name)': \(error.message)", at: error.location)
          }
        }
      case "run_once":
        task.runOnce = reader.bool(value, "'run_once' of task '\(name)'") ?? false
      default:
        break
      }
    }
    // A task with a bad field is kept, without it, for later checks; the errors keep it from running.
    return task
  }

  static func parseAction(_ pair: YAMLPair, task: String, baseDirectory: String, reader: inout NodeReader)
    -> TaskAction?
  {
    let value = pair.value
    switch pair.key {
    case "command":
      guard let items = value.items else {
        reader.error(
          "'command' of task '\(task)' must be a list of arguments (it runs without a shell), found \(value.kindDescription); use 'shell' for a command line.",
          at: value.location)
        return nil
      }
      guard !items.isEmpty else {
        reader.error(
          "'command' of task '\(task)' is empty; expected the program and its arguments.", at: value.location)
        return nil
      }
      var argv: [Template] = []
      for item in items {
        guard case .scalar = item.content, !item.isNull else {
          reader.error(
            "each argument of 'command' must be a string, found \(item.kindDescription).", at: item.location)
          return nil
        }
        guard let template = Template(node: item, reader: &reader) else { return nil }
        argv.append(template)
      }
      return .command(argv)
    case "shell":
      guard reader.string(value, "'shell' of task '\(task)'") != nil,
        let template = Template(node: value, reader: &reader)
      else {
        return nil
      }
      return .shell(template)
    case "script":
      guard let path = reader.string(value, "'script' of task '\(task)'") else { return nil }
      guard
        let resolved = readableFile(
          path, "the script '\(path)' of task '\(task)'", baseDirectory: baseDirectory, at: value,
          reader: &reader)
      else { return nil }
      return .script(path: path, resolvedPath: resolved)
    default:
      guard reader.mapping(value, "'upload' of task '\(task)'", allowed: ["src", "dest", "mode"]) != nil
      else { return nil }
      guard let srcNode = value["src"], let source = reader.string(srcNode, "'upload.src'") else {
        if value["src"] == nil {
          reader.error("'upload' of task '\(task)' has no 'src'.", at: value.location)
        }
        return nil
      }
      guard let destNode = value["dest"], reader.string(destNode, "'upload.dest'") != nil,
        let destination = Template(node: destNode, reader: &reader)
      else {
        if value["dest"] == nil {
          reader.error("'upload' of task '\(task)' has no 'dest'.", at: value.location)
        }
        return nil
      }
      var mode: String?
      if let modeNode = value["mode"], let text = reader.string(modeNode, "'upload.mode'") {
        guard (3...4).contains(text.count), text.allSatisfy({ ("0"..."7").contains($0) }) else {
          reader.error(
            "the mode '\(text)' of task '\(task)' is not an octal file mode; expected something like 0644.",
            at: modeNode.location)
          return nil
        }
        mode = text
      }
      guard
        let resolved = readableFile(
          source, "the upload source '\(source)' of task '\(task)'", baseDirectory: baseDirectory,
          at: srcNode,
          reader: &reader)
      else { return nil }
      return .upload(source: source, resolvedSource: resolved, destination: destination, mode: mode)
    }
  }

  /// `path` resolved against `baseDirectory` when relative, if a readable file is there; else an
  /// error that `what` does not exist or is not readable.
  static func readableFile(
    _ path: String, _ what: String, baseDirectory: String, at node: YAMLNode, reader: inout NodeReader
  ) -> String? {
    let resolved = path.hasPrefix("/") ? path : baseDirectory + "/" + path
    guard FileManager.default.isReadableFile(atPath: resolved) else {
      reader.error("\(what) does not exist or is not readable (looked for \(resolved)).", at: node.location)
      return nil
    }
    return resolved
  }
}
