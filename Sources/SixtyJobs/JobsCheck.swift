import Foundation
import SixtyCalendar
import SixtyCore
import SixtyPlanning
import SixtyPlaybook
import SixtyRun

/// A jobs file checked the way its runs will be: each job's playbook, inventory and policy must
/// exist and load cleanly through `PlanLoader` (what `sixty validate` does), so a job that would
/// fail at 02:00 is refused when the file is read (`sixty jobs next`, the daemon's start and
/// every SIGHUP).
public enum JobsCheck {
  /// The jobs of the file at `path`, nil when the file or any job's files have errors; every
  /// diagnostic: the jobs file's, then each job's followed by its playbook's, without repeats
  /// (jobs often share a playbook).
  public static func load(path: String, now: Date = Date()) -> ([Job]?, [Diagnostic]) {
    let (jobs, diagnostics) = JobsFile.load(path: path, now: now)
    guard let jobs else { return (nil, diagnostics) }
    var bag = DiagnosticBag()
    bag.append(contentsOf: diagnostics)
    var seen = Set(diagnostics)
    for job in jobs {
      for diagnostic in check(job) where seen.insert(diagnostic).inserted {
        bag.append(diagnostic)
      }
    }
    return (bag.hasErrors ? nil : jobs, bag.all)
  }

  /// The problems of one job's files: missing files at the jobs file's position of their key, then
  /// an error there for a playbook that does not load cleanly, followed by the loader's errors at
  /// their own positions.
  public static func check(_ job: Job) -> [Diagnostic] {
    var problems: [Diagnostic] = []
    let files = [
      ("playbook", job.playbook, job.playbookLocation),
      ("inventory", job.inventory, job.inventoryLocation),
    ]
    for (what, path, location) in files where !FileManager.default.isReadableFile(atPath: path) {
      let reason = FileManager.default.fileExists(atPath: path) ? "is not readable" : "does not exist"
      problems.append(
        .error(
          "the \(what) of job '\(job.name)' \(reason) (looked for \(path)); expected a readable file (a relative path is relative to the jobs file).",
          at: location ?? job.location))
    }
    if !problems.isEmpty { return problems }
    var request = RunRequest(source: .playbook(path: job.playbook))
    request.inventory = job.inventory
    request.policy = job.policy
    request.limit = job.limit.map(HostLimit.selector)
    var inputs = Runner.inputs(request)
    // An aws-ec2 inventory lists its hosts when the run starts; here it is read, and the playbook
    // checked without targets.
    let (inventory, inventoryDiagnostics) = InventoryParser.load(path: job.inventory)
    if inventory?.ec2 != nil {
      inputs.inventoryPath = nil
    }
    let outcome = PlanLoader.load(inputs)
    var errors = outcome.diagnostics.filter { $0.severity == .error }
    if inputs.inventoryPath == nil { errors += inventoryDiagnostics.filter { $0.severity == .error } }
    guard !errors.isEmpty else { return [] }
    let count =
      errors.count == 1
      ? "1 error, shown at its own position" : "\(errors.count) errors, shown at their own positions"
    let policy = job.policy.map { " and the policy \($0)" } ?? ""
    problems.append(
      .error(
        "the playbook of job '\(job.name)' does not validate with the inventory \(job.inventory)\(policy) (\(count)); expected `sixty validate` to pass.",
        at: job.playbookLocation ?? job.location))
    return problems + errors
  }
}
