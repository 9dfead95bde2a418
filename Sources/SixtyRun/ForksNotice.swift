import SixtyPlanning

extension Runner {
  /// The sentence said once on standard error when `--forks` asks for more hosts at once than a
  /// play's policy allows (the policy wins), or nil when every play may run that many.
  public static func forksNotice(_ plan: Plan, forks: Int?) -> String? {
    guard let forks,
      let play = plan.plays.first(where: { $0.policy.concurrency < forks })
    else { return nil }
    let allowed = play.policy.concurrency
    let source =
      plan.policyPath.map { "the policy in \($0) (with the play's own) allows" }
      ?? "no organisation policy file was given, and the play's policy (or the built-in default) allows"
    let others = plan.plays.count > 1 ? " in the play '\(play.name)'" : ""
    return
      "sixty: warning: --forks \(forks) asks for more hosts at once than the policy allows: \(source) \(allowed)\(others), so the policy wins and at most \(allowed) hosts run at once."
  }
}
