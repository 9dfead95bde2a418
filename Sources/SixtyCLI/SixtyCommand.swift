import ArgumentParser
import Foundation

/// The root `sixty` command.
public struct SixtyCommand: AsyncParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "sixty",
    abstract: "Run commands and playbooks across a fleet over SSH with 60-second ephemeral keys.",
    version: "0.1.0",
    subcommands: [
      ValidateCommand.self, PlanCommand.self, RunCommand.self, ExecCommand.self, PushCommand.self,
      SshCommand.self, BrokerCommand.self, JobsCommand.self, RunsCommand.self, PreflightCommand.self,
      AuditCommand.self,
    ]
  )

  public init() {}

  /// Parses the command line and runs the chosen command; exits with Sixty's documented codes
  /// (a bad flag exits 2, not ArgumentParser's 64).
  public static func run(arguments: [String]? = nil) async -> Never {
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
