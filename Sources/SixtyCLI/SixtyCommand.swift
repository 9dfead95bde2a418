import ArgumentParser

/// The root `sixty` command.
public struct SixtyCommand: AsyncParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "sixty",
    abstract: "Run commands and playbooks across a fleet over SSH with 60-second ephemeral keys.",
    subcommands: []
  )

  public init() {}
}
