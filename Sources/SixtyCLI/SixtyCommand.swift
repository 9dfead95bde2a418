import ArgumentParser
import Foundation
import SixtyRun

/// The root `sixty` command.
public struct SixtyCommand: AsyncParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "sixty",
    abstract: "Run commands and playbooks across a fleet over SSH with 60-second ephemeral keys.",
    version: "0.1.0",
    subcommands: [
      ValidateCommand.self, PlanCommand.self, RunCommand.self, ExecCommand.self, PushCommand.self,
      SshCommand.self, BrokerCommand.self, JobsCommand.self, RunsCommand.self, PreflightCommand.self,
      AuditCommand.self, RunRequestCommand.self,
    ]
  )

  public init() {}

  /// Parses the command line and runs the chosen command; exits with Sixty's documented codes
  /// (a bad flag exits 2, not ArgumentParser's 64).
  public static func run(arguments: [String]? = nil) async -> Never {
    FileLimit.raise()
    do {
      var command = try parseAsRoot(arguments)
      if var asyncCommand = command as? AsyncParsableCommand {
        try await asyncCommand.run()
      } else {
        try command.run()
      }
      Foundation.exit(0)
    } catch let error as CLIError {
      FileHandle.standardError.write(Data("sixty: error: \(error.message)\n".utf8))
      Foundation.exit(error.code)
    } catch let error as RunFailure {
      FileHandle.standardError.write(Data("sixty: error: \(error.message)\n".utf8))
      Foundation.exit(error.status.rawValue)
    } catch {
      let code = exitCode(for: error)
      if code == .success || error is ExitCode {
        self.exit(withError: error)
      }
      let message = fullMessage(for: error)
      if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
      Foundation.exit(code == .validationFailure ? 2 : code.rawValue)
    }
  }
}

/// Every host of a run holds a few descriptors (its ssh master, a task's pipes): the soft limit
/// on open files is raised to the hard limit (at most 1,048,576) at start, as large runs need.
enum FileLimit {
  static func raise() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
    let wanted = min(limit.rlim_max, 1_048_576)
    if limit.rlim_cur < wanted {
      limit.rlim_cur = wanted
      setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
  }

  static var current: Int {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    return Int(limit.rlim_cur)
  }
}
