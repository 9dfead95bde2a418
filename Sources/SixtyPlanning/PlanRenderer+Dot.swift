import SixtyPlaybook

/// Renders each play's task graph as Graphviz DOT, plays chained in run order.
public enum PlanDotRenderer {
  public static func render(_ plan: Plan) -> String {
    var out = "digraph plan {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n"
    for (p, play) in plan.plays.enumerated() {
      let hosts = play.hosts.filter { $0.refusal == nil }.count
      out += "  subgraph cluster_\(p) {\n"
      let label =
        "play \(p + 1): \(play.name) (\(hosts) host\(hosts == 1 ? "" : "s"), \(play.batches.count) batch\(play.batches.count == 1 ? "" : "es"))"
      out += "    label=\(quote(label));\n"
      for (i, task) in play.tasks.enumerated() {
        let runs = play.hosts.filter { h in h.steps.contains { $0.task == i && $0.status == .run } }.count
        out +=
          "    p\(p)_t\(i) [label=\(quote("\(task.name)\n\(task.action.kind), \(runs)/\(play.hosts.count) host\(play.hosts.count == 1 ? "" : "s")"))];\n"
      }
      for (i, deps) in play.graph.dependencies.enumerated() {
        for d in deps { out += "    p\(p)_t\(d) -> p\(p)_t\(i);\n" }
      }
      out += "  }\n"
      if p > 0, let last = plan.plays[p - 1].graph.order.last, let first = play.graph.order.first {
        out += "  p\(p - 1)_t\(last) -> p\(p)_t\(first) [style=dashed, label=\"then\"];\n"
      }
    }
    out += "}\n"
    return out
  }

  static func quote(_ text: String) -> String {
    var escaped = "\""
    for c in text {
      switch c {
      case "\"": escaped += "\\\""
      case "\\": escaped += "\\\\"
      case "\n": escaped += "\\n"
      default: escaped.append(c)
      }
    }
    return escaped + "\""
  }
}
