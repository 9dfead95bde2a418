import Foundation
import SixtyPlaybook
import Testing

/// Hostile strings for quoting: every kind of Unicode scalar that glues itself to a preceding
/// quote in a Swift `Character` (combining marks of every script, ZWJ, variation selectors,
/// emoji modifiers, regional indicators, Hangul jamo), bidi controls, every C0 control but NUL,
/// shell syntax, and long strings. Deterministic: the same seed gives the same strings.
struct HostileStrings {
  var state: UInt64

  init(seed: UInt64) { state = seed }

  /// SplitMix64.
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  mutating func pick<T>(_ items: [T]) -> T { items[Int(next() % UInt64(items.count))] }

  /// Scalars that combine with what precedes them, or change how text is shown.
  static let gluing: [UInt32] =
    Array(0x0300...0x036F) + [
      0x0483, 0x0489, 0x0591, 0x05BF, 0x0610, 0x064B, 0x0670, 0x06D6, 0x0711, 0x0730, 0x07EB, 0x0816,
      0x093C, 0x094D, 0x0981, 0x0A3C, 0x0BCD, 0x0E31, 0x0E47, 0x0F71, 0x102D, 0x1AB0, 0x1ABE, 0x1DC0,
      0x1DFF, 0x20D0, 0x20DD, 0x20E3, 0x20F0, 0x302A, 0x3099, 0xFE20, 0xFE2F, 0x101FD, 0x1D167,
      0x1E8D0, 0xE0020, 0xE007F,
      // joiners, variation selectors, emoji modifiers, regional indicators, Hangul jamo
      0x200C, 0x200D, 0xFE00, 0xFE0E, 0xFE0F, 0xE0100, 0xE01EF, 0x1F3FB, 0x1F3FC, 0x1F3FF, 0x1F1E6,
      0x1F1FF, 0x1100, 0x1161, 0x11A8, 0xAC00,
      // bidi controls, separators, odd spaces, BOM, replacement, the last scalars
      0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F, 0x061C,
      0x2028, 0x2029, 0x0085, 0x00A0, 0x3000, 0xFEFF, 0xFFFD, 0xFFFF, 0x10FFFD, 0x10FFFF,
    ]

  static let syntax = [
    "'", "'", "'", "\"", "\\", "$", "`", "(", ")", ";", "&", "|", "<", ">", "*", "?", "[", "]", "{", "}",
    "~", "#", "!", "=", "%", " ", "\t", "\n", "\r", "\r\n", "$(touch /tmp/sixty-pwned)",
    "`touch /tmp/sixty-pwned`", "';touch /tmp/sixty-pwned;'", "${IFS}", "$'\\x27'", "-", "--", "a", "Z", "9",
    "é", "日本", "🧑‍💻", "👍🏽", "🇫🇷",
  ]

  mutating func string() -> String {
    var scalars = String.UnicodeScalarView()
    let length = Int(next() % 24)
    for _ in 0..<length {
      switch next() % 5 {
      case 0:
        // A quote with something glued to it: the case that broke Character-based quoting.
        scalars.append("'")
        scalars.append(Unicode.Scalar(pick(Self.gluing))!)
      case 1: scalars.append(Unicode.Scalar(pick(Self.gluing))!)
      case 2: scalars.append(Unicode.Scalar(UInt32(1 + next() % 31))!)  // C0 controls but NUL
      case 3: scalars.append(contentsOf: pick(Self.syntax).unicodeScalars)
      default:
        if next() % 64 == 0 { scalars.append(Unicode.Scalar(0x7F)) }
        scalars.append(contentsOf: pick(Self.syntax).unicodeScalars)
        scalars.append(Unicode.Scalar(pick(Self.gluing))!)
      }
    }
    return String(scalars)
  }

  /// `count` strings: the fixed attacks first, a few long ones, the rest generated.
  mutating func strings(_ count: Int) -> [String] {
    var out = [
      "x'\u{301}$(touch /tmp/sixty-pwned)", "'\u{200D}; touch /tmp/sixty-pwned; '", "'\u{FE0F}`id`'",
      "'\u{20E3}\n touch /tmp/sixty-pwned", "'\u{1F3FB}$(id)'", "", "'", "''", "\\'",
    ]
    for _ in 0..<3 {
      var long = ""
      for _ in 0..<400 { long += string() }
      out.append(long)
    }
    while out.count < count { out.append(string()) }
    return out
  }
}

/// A real shell prints every hostile string back exactly, after `ShellQuote.quote`.
@Suite struct QuotingDifferentialTests {
  /// Runs `shell` on `script` (a file), returning its stdout bytes.
  static func run(_ shell: [String], script: String, environment: [String: String] = [:]) throws -> (
    Int32, [UInt8]
  ) {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-quote-\(UUID()).out")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: output) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: shell[0])
    process.arguments = Array(shell.dropFirst()) + [script]
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = try FileHandle(forWritingTo: output)
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return (process.terminationStatus, [UInt8](try Data(contentsOf: output)))
  }

  static func split(_ bytes: [UInt8]) -> [String] {
    var parts = bytes.split(separator: 0, omittingEmptySubsequences: false).map {
      String(decoding: $0, as: UTF8.self)
    }
    if parts.last == "" { parts.removeLast() }
    return parts
  }

  @Test(arguments: [["/bin/sh"], ["/bin/bash", "--norc", "--noprofile"]])
  func aRealShellPrintsEveryQuotedStringBackExactly(shell: [String]) throws {
    guard FileManager.default.isExecutableFile(atPath: shell[0]) else { return }
    var generator = HostileStrings(seed: 0x5158_7479)
    let inputs = generator.strings(5000)
    let marker = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-pwned-\(UUID())").path
    // One `printf '%s\0' WORD` per string: NUL separates them in the output.
    var script = "cd " + ShellQuote.quote(FileManager.default.temporaryDirectory.path) + " || exit 9\n"
    for input in inputs {
      let word = ShellQuote.quote(input.replacingOccurrences(of: "/tmp/sixty-pwned", with: marker))
      script += "printf '%s\\0' " + word + "\n"
    }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-quote-\(UUID()).sh").path
    try script.write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let (status, output) = try Self.run(shell, script: path, environment: ["LC_ALL": "C.UTF-8"])
    #expect(status == 0)
    let printed = Self.split(output)
    let expected = inputs.map { $0.replacingOccurrences(of: "/tmp/sixty-pwned", with: marker) }
    #expect(printed.count == expected.count)
    var mismatches = 0
    for (got, want) in zip(printed, expected) where got.utf8.elementsEqual(want.utf8) == false {
      mismatches += 1
      if mismatches <= 3 {
        Issue.record("\(shell[0]) printed \(got.debugDescription) for \(want.debugDescription)")
      }
    }
    #expect(mismatches == 0)
    #expect(!FileManager.default.fileExists(atPath: marker), "a quoted string ran a command")
  }

  /// Unquoted output is only for strings of safe bytes; everything else is one quoted word.
  @Test func gluedQuotesAreEscaped() {
    #expect(ShellQuote.quote("x'\u{301}$(id)") == "'x'\\''\u{301}$(id)'")
    #expect(ShellQuote.quote("'\u{200D}") == "''\\''\u{200D}'")
    #expect(ShellQuote.quote("a\u{301}") == "'a\u{301}'")
  }
}

/// The same strings through `sixty run` and a real sshd: as an argument of `command:`, through
/// `| quote` in `shell:`, and as an `env:` value, each printed back exactly by the host.
@Suite(.serialized) struct QuotingThroughSSHDTests {
  /// `text` as a YAML double-quoted scalar: printable ASCII as itself, everything else escaped.
  static func yaml(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar.value {
      case 0x22: out += "\\\""
      case 0x5C: out += "\\\\"
      case 0x20...0x7E: out.unicodeScalars.append(scalar)
      case 0...0xFFFF: out += String(format: "\\u%04X", scalar.value)
      default: out += String(format: "\\U%08X", scalar.value)
      }
    }
    return out + "\""
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func everyStringComesBackExactlyFromTheHost() throws {
    try withLocalFleet(LocalFleet(count: 1)) { fleet in
      let marker = fleet.directory + "/pwned"
      var generator = HostileStrings(seed: 0x7373_6864)
      let inputs = generator.strings(2000).filter { $0.utf8.count < 160 }.prefix(600).map {
        $0.replacingOccurrences(of: "/tmp/sixty-pwned", with: marker)
      }
      let perTask = 8
      var vars = ""
      var tasks = ""
      var expected: [String: [String]] = [:]
      for (i, input) in inputs.enumerated() { vars += "  v\(i): \(Self.yaml(input))\n" }
      for start in stride(from: 0, to: inputs.count, by: perTask) {
        let chunk = Array(start..<min(start + perTask, inputs.count))
        let args = chunk.map { "\"{{ v\($0) }}\"" }.joined(separator: ", ")
        tasks += "  - name: argv-\(start)\n    command: [printf, '%s\\0', \(args)]\n"
        expected["argv-\(start)"] = chunk.map { inputs[$0] }
      }
      for i in stride(from: 0, to: inputs.count, by: 20) {
        tasks += "  - name: shell-\(i)\n    shell: \"printf '%s' {{ v\(i) | quote }}\"\n"
        tasks +=
          "  - name: env-\(i)\n    shell: printf '%s' \"$SIXTY_V\"\n    env: {SIXTY_V: \"{{ v\(i) }}\"}\n"
        expected["shell-\(i)"] = [inputs[i]]
        expected["env-\(i)"] = [inputs[i]]
      }
      let playbook = fleet.directory + "/quoting.yml"
      try "name: quoting\nhosts: all\nvars:\n\(vars)tasks:\n\(tasks)".write(
        toFile: playbook, atomically: true, encoding: .utf8)
      let reportPath = fleet.directory + "/report.json"
      let result = try SixtyBinary.run(
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--report",
          reportPath,
        ],
        environment: fleet.environment)
      #expect(result.status == 0, "\(result.stdout.suffix(2000))\n\(result.stderr.suffix(2000))")
      // JSONDecoder, not JSONSerialization: the latter drops a U+FEFF that follows an escaped NUL.
      struct Report: Decodable {
        struct Play: Decodable { var hosts: [String: Host] }
        struct Host: Decodable { var tasks: [Task] }
        struct Task: Decodable {
          var name: String
          var stdout: String?
        }
        var plays: [Play]
      }
      let report = try JSONDecoder().decode(
        Report.self, from: Data(contentsOf: URL(fileURLWithPath: reportPath)))
      let taskList = try #require(report.plays.first?.hosts["web-1"]?.tasks)
      #expect(taskList.count == expected.count)
      var mismatches = 0
      for task in taskList {
        let name = task.name
        let stdout = task.stdout ?? ""
        let printed =
          name.hasPrefix("argv-") ? QuotingDifferentialTests.split(Array(stdout.utf8)) : [stdout]
        if printed.count != expected[name]?.count
          || !zip(printed, expected[name] ?? []).allSatisfy({ $0.utf8.elementsEqual($1.utf8) })
        {
          mismatches += 1
          if mismatches <= 3 {
            Issue.record("\(name) printed \(printed.map(\.debugDescription)) for \(expected[name] ?? [])")
          }
        }
      }
      #expect(mismatches == 0)
      #expect(!FileManager.default.fileExists(atPath: marker), "a quoted string ran a command on the host")
    }
  }

  /// The report of issue 22, as a user would try it: the value comes from `-e`.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aQuoteWithACombiningMarkFromExtraVarsRunsNothing() throws {
    try withLocalFleet(LocalFleet(count: 1)) { fleet in
      let marker = fleet.directory + "/PWNED"
      let value = "x'\u{301}$(touch \(marker))"
      let playbook = fleet.directory + "/pb.yml"
      try "name: argv\nhosts: all\ntasks: [{name: argv, command: [printf, '%s', \"{{ v }}\"]}]\n".write(
        toFile: playbook, atomically: true, encoding: .utf8)
      let inventory = try fleet.writeInventory()
      let plan = try SixtyBinary.run(["plan", playbook, "-i", inventory, "-e", "v=\(value)"])
      #expect(plan.status == 0, "\(plan.stderr)")
      #expect(plan.stdout.contains("printf %s 'x'\\''\u{301}$(touch \(marker))'"), "\(plan.stdout)")
      let run = try SixtyBinary.run(
        ["run", playbook, "-i", inventory, "--endpoint", fleet.endpoint, "-e", "v=\(value)"],
        environment: fleet.environment)
      #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
      #expect(run.stdout.contains("web-1 | \(value)"), "\(run.stdout)")
      #expect(!FileManager.default.fileExists(atPath: marker))
    }
  }
}
