import Foundation

/// Runs the built `sixty` executable, as users and scripts do.
struct SixtyBinary {
  struct Result {
    var status: Int32
    var stdout: String
    var stderr: String
  }

  /// The `sixty` next to the test bundle, or `$SIXTY_BIN`.
  static var path: String {
    if let override = ProcessInfo.processInfo.environment["SIXTY_BIN"] { return override }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
      let candidate = dir.appendingPathComponent("sixty").path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      dir = dir.deletingLastPathComponent()
    }
    return packageRoot.appendingPathComponent(".build/debug/sixty").path
  }

  static var packageRoot: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
  }

  /// Runs `sixty ARGS` in `directory` (the package root by default), draining both pipes at once;
  /// `at` runs it under `faketime` with its clock starting at that time (UTC), so nothing it
  /// prints depends on today's date.
  static func run(
    _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:],
    at time: String? = nil
  ) throws -> Result {
    var env = ProcessInfo.processInfo.environment
    env["SIXTY_INVENTORY"] = nil
    env["SIXTY_POLICY"] = nil
    // Never the user's own history: a scratch one unless the test names one.
    if env["SIXTY_HISTORY"] == nil {
      env["SIXTY_HISTORY"] =
        FileManager.default.temporaryDirectory.appendingPathComponent(
          "sixty-tests-\(getpid())/history.sqlite"
        ).path
    }
    for (k, v) in environment { env[k] = v }
    var program = path
    var words = arguments
    if let time {
      guard let faketime = LocalProcess.which("faketime") else {
        throw Spawn.Failure(description: "faketime is not installed (make test installs it)")
      }
      env["TZ"] = "UTC"
      program = faketime
      words = [time, path] + arguments
    }
    let (status, stdout, stderr) = try runProgram(
      program, words, directory: directory ?? packageRoot, environment: env)
    return Result(status: status, stdout: stdout, stderr: stderr)
  }
}
