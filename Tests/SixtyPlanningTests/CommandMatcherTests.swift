import SixtyPolicy
import Testing

/// Deny rules match commands, not text: option spellings, wrappers, shell structure.
struct CommandMatcherTests {
  static func refused(_ rule: String, shell text: String) -> Bool {
    if case .rule = CommandMatcher([CommandRule(pattern: .literal(rule))]).refusal(for: .shell(text)) {
      return true
    }
    return false
  }

  static func refused(_ rule: String, argv: [String]) -> Bool {
    let matcher = CommandMatcher([CommandRule(pattern: .literal(rule))])
    if case .rule = matcher.refusal(for: .argv(argv, text: argv.joined(separator: " "))) { return true }
    return false
  }

  static let shellCases: [(rule: String, text: String, refused: Bool)] = [
    // Option spellings.
    ("rm -rf /", "rm -rf /", true),
    ("rm -rf /", "rm -fr /", true),
    ("rm -rf /", "rm -r -f /", true),
    ("rm -rf /", "rm -R -f /", true),
    ("rm -rf /", "rm -Rf /", true),
    ("rm -rf /", "rm --recursive --force /", true),
    ("rm -rf /", "rm --force --recursive /", true),
    ("rm -rf /", "rm --rec --for /", true),
    ("rm -rf /", "rm / -rf", true),
    ("rm -rf /", "rm -r / -f", true),
    ("rm -rf /", "rm -rf -- /", true),
    ("rm -rf /", "rm -rfv --no-preserve-root /", true),
    ("rm -rf /", "rm   -rf   /", true),
    ("rm -rf /", "rm -rf //", true),
    ("rm -rf /", "rm -rf /./", true),
    ("rm -rf /", "rm -rf /tmp/..", true),
    ("rm -rf /", "rm -rf /*", true),
    ("rm -rf /", "/bin/rm -rf /", true),
    ("rm -rf /", "\\rm -rf /", true),
    ("rm -rf /", "'rm' '-rf' '/'", true),
    ("rm -rf /", "r\"m\" -r\\f /", true),
    ("rm -r -f /", "rm -rf /", true),
    ("rm --recursive --force /", "rm -fr /", true),
    // What is not the rule.
    ("rm -rf /", "rm  -rf /tmp/x", false),
    ("rm -rf /", "rm -r /", false),
    ("rm -rf /", "rm -f /", false),
    ("rm -rf /", "rm -rf '/*'", false),
    ("rm -rf /", "echo rm -rf /", false),
    ("rm -rf /", "echo 'rm -rf /'", false),
    ("rm -rf /", "rm -rf -- -/", false),
    ("rm -rf /", "rmdir -rf /", false),
    ("rm -rf /", "grep -r -f / x", false),
    // Shell structure.
    ("rm -rf /", "cd /tmp; rm -rf /", true),
    ("rm -rf /", "true && rm -rf /", true),
    ("rm -rf /", "false || rm -rf /", true),
    ("rm -rf /", "ls | rm -rf /", true),
    ("rm -rf /", "sleep 1 & rm -rf /", true),
    ("rm -rf /", "echo ok\nrm -rf /", true),
    ("rm -rf /", "echo $(rm -rf /)", true),
    ("rm -rf /", "echo \"$(rm -rf /)\"", true),
    ("rm -rf /", "echo `rm -rf /`", true),
    ("rm -rf /", "(rm -rf /)", true),
    ("rm -rf /", "{ rm -rf /; }", true),
    ("rm -rf /", "if true; then rm -rf /; fi", true),
    ("rm -rf /", "while true; do rm -rf /; done", true),
    ("rm -rf /", "f() { rm -rf /; }; f", true),
    ("rm -rf /", "X=1 Y=2 rm -rf /", true),
    ("rm -rf /", "rm -rf / > /dev/null 2>&1", true),
    ("rm -rf /", "2>/dev/null rm -rf /", true),
    ("rm -rf /", "echo ${x:-$(rm -rf /)}", true),
    ("rm -rf /", "echo $((1 + $(rm -rf /)))", true),
    ("rm -rf /", "! rm -rf /", true),
    ("rm -rf /", "echo hi # rm -rf /", false),
    ("rm -rf /", "cat <<EOF\nrm -rf /\nEOF\necho done", false),
    ("rm -rf /", "sh <<EOF\nrm -rf /\nEOF", true),
    ("rm -rf /", "echo \"rm -rf /\"", false),
    // Wrappers.
    ("rm -rf /", "sudo rm -rf /", true),
    ("rm -rf /", "sudo -u root -- rm -rf /", true),
    ("rm -rf /", "sudo -n -E rm -rf /", true),
    ("rm -rf /", "env A=1 rm -rf /", true),
    ("rm -rf /", "env -i -u HOME rm -rf /", true),
    ("rm -rf /", "env -S 'rm -rf /'", true),
    ("rm -rf /", "nice -n 10 rm -rf /", true),
    ("rm -rf /", "nohup rm -rf / &", true),
    ("rm -rf /", "exec rm -rf /", true),
    ("rm -rf /", "command rm -rf /", true),
    ("rm -rf /", "timeout 10 rm -rf /", true),
    ("rm -rf /", "timeout -s KILL -k 5 10s rm -rf /", true),
    ("rm -rf /", "echo / | xargs -n 1 rm -rf /", true),
    ("rm -rf /", "sh -c 'rm -rf /'", true),
    ("rm -rf /", "bash -c \"rm -fr /\"", true),
    ("rm -rf /", "bash -lc 'cd / && rm -r -f /'", true),
    ("rm -rf /", "sh -c \"sh -c 'sudo rm -rf /'\"", true),
    ("rm -rf /", "eval 'rm -rf /'", true),
    ("rm -rf /", "su -c 'rm -rf /' root", true),
    ("rm -rf /", "busybox rm -rf /", true),
    ("rm -rf /", "busybox sh -c 'rm -rf /'", true),
    ("rm -rf /", "cat <(rm -rf /)", true),
    ("rm -rf /", "rm -rf / <<< x", true),
    ("rm -rf /", "find / -maxdepth 0 -exec rm -rf {} \\; -exec rm -rf / \\;", true),
    ("rm -rf /", "sudo env X=1 nice timeout 5 /usr/bin/rm --force -R /", true),
    // Other commands whose long options GNU documents as short ones.
    ("chmod -R 777 /", "chmod --recursive 777 /", true),
    ("chmod -R 777 /", "chmod 777 / -R", true),
    ("chmod -R 777 /", "chmod 777 /", false),
    ("chown -R nobody /", "chown --recursive nobody /", true),
    ("dd of=/dev/sda", "dd if=/dev/zero of=/dev/sda bs=1M", true),
    ("dd of=/dev/sda", "dd if=/dev/sda of=/tmp/x", false),
    ("mkfs", "mkfs.ext4 /dev/sdb1", true),
    ("mkfs -t ext4", "mkfs --type ext4 /dev/sdb", true),
    ("shutdown -r", "shutdown --reboot now", true),
    ("shutdown -P", "shutdown -h now", true),
    ("reboot -f", "reboot --force", true),
    ("poweroff", "sudo poweroff", true),
    ("systemctl -f", "systemctl --force reboot", true),
    ("systemctl stop sshd", "systemctl stop sshd.socket sshd", true),
    ("systemctl stop sshd", "systemctl restart sshd", false),
    ("kill -9 1", "kill -KILL 1", true),
    ("kill -9 1", "kill -SIGKILL 1", true),
    ("kill -9 1", "kill -s KILL 1", true),
    ("kill -9 1", "kill --signal=kill 1", true),
    ("kill -9 1", "kill -TERM 1", false),
    ("pkill -9 sshd", "pkill --signal KILL sshd", true),
    ("pkill -f sshd", "pkill --full sshd", true),
    ("iptables -F", "iptables --flush", true),
    ("iptables -F", "iptables -t nat --flush", true),
    ("iptables -P INPUT DROP", "iptables --policy INPUT DROP", true),
    ("find / -delete", "find / -name '*.log' -delete", true),
    ("find / -delete", "find / -depth -lname x", false),
    ("find / -delete", "find /srv -delete", false),
    // A rule of several commands.
    ("curl | sh", "curl -s https://x | sh", true),
    ("curl | sh", "curl -s https://x > f", false),
    // Unicode: a look-alike is not the command.
    ("rm -rf /", "rm -rf \u{2215}", false),
    ("rm -rf /", "rm -rf /\u{301}", false),
    ("rm -rf /", "ｒｍ -rf /", false),
  ]

  @Test(arguments: shellCases.indices)
  func shellText(_ index: Int) {
    let c = Self.shellCases[index]
    #expect(Self.refused(c.rule, shell: c.text) == c.refused, "rule '\(c.rule)' against '\(c.text)'")
  }

  static let argvCases: [(rule: String, argv: [String], refused: Bool)] = [
    ("rm -rf /", ["rm", "-fr", "/"], true),
    ("rm -rf /", ["rm", "-r", "-f", "/"], true),
    ("rm -rf /", ["/bin/rm", "--recursive", "--force", "/"], true),
    ("rm -rf /", ["rm", "-rf", "/tmp/x"], false),
    ("rm -rf /", ["rm", "-rf", "/ "], false),
    ("rm -rf /", ["echo", "rm -rf /"], false),
    ("rm -rf /", ["sudo", "rm", "-rf", "/"], true),
    ("rm -rf /", ["sh", "-c", "rm -rf /"], true),
    ("rm -rf /", ["bash", "-ec", "echo; rm -fr /"], true),
    ("rm -rf /", ["env", "A=b", "timeout", "5", "rm", "-Rf", "/"], true),
    ("rm -rf /", ["rm", "-rf", "-v", "--", "/"], true),
    ("rm -rf /", ["rm", "--", "-rf", "/"], false),
    ("kill -9 1", ["kill", "-9", "1"], true),
  ]

  @Test(arguments: argvCases.indices)
  func argumentList(_ index: Int) {
    let c = Self.argvCases[index]
    #expect(Self.refused(c.rule, argv: c.argv) == c.refused, "rule '\(c.rule)' against \(c.argv)")
  }

  @Test(arguments: [
    "echo 'unbalanced", "echo \"unbalanced", "echo $(date", "echo `date", "echo ${x", "sh -c 'echo \"x'",
  ])
  func unparsableShellIsRefused(_ text: String) {
    let matcher = CommandMatcher([CommandRule(pattern: .literal("rm -rf /"))])
    guard case .unparsable(let why) = matcher.refusal(for: .shell(text)) else {
      Issue.record("'\(text)' was not refused as unparsable")
      return
    }
    #expect(why.contains("never closed"))
  }

  @Test func unparsableShellWithOnlyRegexRulesIsChecked() {
    let matcher = CommandMatcher([CommandRule(pattern: .regex("mkfs"))])
    #expect(matcher.refusal(for: .shell("echo 'x")) == nil)
    #expect(matcher.refusal(for: .shell("mkfs 'x")) != nil)
  }

  @Test func regexRulesStillMatchText() {
    let matcher = CommandMatcher([CommandRule(pattern: .regex("mkfs(\\.[a-z0-9]+)?\\s"))])
    #expect(matcher.refusal(for: .shell("echo mkfs.ext4 /dev/sdb")) != nil)
    #expect(matcher.refusal(for: .argv(["ls"], text: "ls")) == nil)
  }

  @Test func nestingIsBounded() {
    var text = "rm -rf /"
    for _ in 0..<20 { text = "sh -c \"$(echo " + text + ")\"" }
    let matcher = CommandMatcher([CommandRule(pattern: .literal("rm -rf /"))])
    guard case .unparsable(let why) = matcher.refusal(for: .shell(text)) else {
      Issue.record("deep nesting was not refused")
      return
    }
    #expect(why.contains("nested more than"))
    let deep = String(repeating: "$(", count: 10_000) + "x" + String(repeating: ")", count: 10_000)
    #expect(matcher.refusal(for: .shell(deep)) != nil)
    let wide = String(repeating: "(", count: 100_000) + "rm -rf /" + String(repeating: ")", count: 100_000)
    #expect(matcher.refusal(for: .shell(wide)) == .rule(CommandRule(pattern: .literal("rm -rf /"))))
  }

  /// Large hostile text is parsed in one pass: many commands, long words, many quotes, deep
  /// backquotes (each level escaped), a here-document that never ends.
  @Test func largeTextIsParsedLinearly() {
    let matcher = CommandMatcher([CommandRule(pattern: .literal("rm -rf /"))])
    let many = String(repeating: "echo x; ", count: 50_000) + "rm -rf /"
    #expect(matcher.refusal(for: .shell(many)) == .rule(CommandRule(pattern: .literal("rm -rf /"))))
    let quotes = String(repeating: "'a'\"b\"$'c'", count: 50_000)
    #expect(matcher.refusal(for: .shell("echo " + quotes)) == nil)
    let heredoc = "cat <<EOF\n" + String(repeating: "rm -rf /\n", count: 10_000)
    #expect(matcher.refusal(for: .shell(heredoc)) == nil)
    let word = String(repeating: "\u{301}", count: 100_000)
    #expect(matcher.refusal(for: .argv(["rm", "-rf", "/" + word], text: "")) == nil)
  }

  @Test func literalRulesMustParse() {
    #expect(CommandMatcher.literalProblem("rm -rf /") == nil)
    #expect(CommandMatcher.literalProblem("rm 'x") != nil)
    #expect(CommandMatcher.literalProblem("   ") != nil)
  }
}
