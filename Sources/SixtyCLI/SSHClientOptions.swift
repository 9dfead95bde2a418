import ArgumentParser
import SixtyExecution
import SixtyRun

/// ssh's own habits on `run`, `exec` and `runs rerun`: `-o`, `-J`, `-F`, `-u`, and `-v`/`-vv`.
struct SSHClientOptions: ParsableArguments {
  @Option(
    name: .customShort("o"),
    help: ArgumentHelp(
      "An ssh option (Key=Value) for every connection, as ssh -o; repeatable.", valueName: "option"))
  var options: [String] = []

  @Option(
    name: .customShort("J"),
    help: ArgumentHelp(
      "Jump host(s) for every connection, as ssh -J ([user@]host[:port],…).", valueName: "destination"))
  var jump: String?

  @Option(
    name: .customShort("F"),
    help: ArgumentHelp("The ssh configuration file, as ssh -F (also for ssh -G).", valueName: "configfile"))
  var configFile: String?

  @Option(
    name: .customShort("u"),
    help: ArgumentHelp(
      "The remote user for every host, over the inventory's (default: the inventory's, else ssh_config's User, else yours).",
      valueName: "user"))
  var user: String?

  @Flag(
    name: .shortAndLong,
    help:
      "More detail on standard error: -v keys, users, push and authentication timings; -vv every ssh command line too."
  )
  var verbose: Int

  var settings: SSHClientSettings {
    SSHClientSettings(options: options, jump: jump, configFile: configFile, user: user)
  }

  func validate() throws {
    if let problem = settings.problem { throw ValidationError(problem) }
  }

  func apply(to request: inout RunRequest) {
    request.sshClient = settings
    request.verbosity = verbose
  }
}
