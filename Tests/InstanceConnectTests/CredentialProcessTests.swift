import Foundation
import Testing

@testable import InstanceConnect

@Suite struct CredentialProcessTests {
  @Test func commandLinesSplitLikeAShellWithoutExpansions() throws {
    #expect(
      try CredentialProcess.split(#"/bin/get  --a 'b c' "d\"e" f\ g $HOME"#) == [
        "/bin/get", "--a", "b c", #"d"e"#, "f g", "$HOME",
      ])
    #expect(try CredentialProcess.split(#"x "a\nb" 'c\d'"#) == ["x", #"a\nb"#, #"c\d"#])
    #expect(try CredentialProcess.split("  ") == [])
    #expect(throws: CredentialProcess.SplitError.self) { try CredentialProcess.split("x 'open") }
    #expect(throws: CredentialProcess.SplitError.self) { try CredentialProcess.split(#"x "open"#) }
  }

  @Test func aProcessThatHangsIsStopped() async throws {
    let process = CredentialProcess(command: "sleep 30", profile: "slow", timeout: 0.3)
    do {
      _ = try await process.fetch()
      Issue.record("expected a timeout")
    } catch {
      #expect(error.description.contains("did not finish within"), "\(error)")
      #expect(error.description.contains("'slow'"))
    }
  }
}
