import Foundation
import Testing

@testable import SixtyProcess

@Suite struct CappedBufferTests {
  @Test func outputIsCappedWithAVisibleMarker() {
    var buffer = CappedBuffer(cap: 10)
    buffer.append(Array("12345".utf8)[...])
    buffer.append(Array("6789abcdef".utf8)[...])
    #expect(buffer.bytes == Array("123456789a".utf8))
    #expect(buffer.dropped == 5)
    #expect(buffer.text == "123456789a\n[sixty: output truncated: 5 more bytes not kept (cap 10 bytes)]\n")
    var small = CappedBuffer(cap: 10)
    small.append(Array("ok\n".utf8)[...])
    #expect(small.text == "ok\n")
  }

  @Test func aTailBufferKeepsTheLastBytes() {
    var buffer = CappedBuffer(cap: 4, keeping: .tail)
    buffer.append(Array("abc".utf8)[...])
    buffer.append(Array("defgh".utf8)[...])
    #expect(buffer.bytes == Array("efgh".utf8))
    #expect(buffer.dropped == 4)
  }
}

@Suite struct WaitStatusTests {
  @Test func decodesExitsAndSignals() {
    #expect(WaitStatus(raw: 0) == .exited(0))
    #expect(WaitStatus(raw: 3 << 8) == .exited(3))
    #expect(WaitStatus(raw: 255 << 8).code == 255)
    #expect(WaitStatus(raw: SIGKILL) == .signalled(SIGKILL))
    #expect(WaitStatus(raw: SIGTERM).code == 128 + SIGTERM)
    // A core dump sets bit 7; the signal is still the low 7 bits.
    #expect(WaitStatus(raw: 0x80 | SIGSEGV) == .signalled(SIGSEGV))
  }
}

@Suite struct ChildProcessTests {
  @Test func capturesBothStreamsAndTheExit() async throws {
    let output = try await ChildProcess.run(
      ["/bin/sh", "-c", "echo out; echo err >&2; exit 7"], SpawnOptions(output: .capture(cap: 100)))
    #expect(output.ended == .exited(7))
    #expect(output.stdout.text == "out\n")
    #expect(output.stderr.text == "err\n")
  }

  @Test func feedsStdinAndMergesStderrKeepingTheTail() async throws {
    let output = try await ChildProcess.run(
      ["/bin/sh", "-c", "cat; echo \"$GREETING\" >&2"],
      SpawnOptions(
        stdin: .bytes(Array("0123456789\n".utf8), then: nil),
        output: .capture(cap: 8, keeping: .tail, mergeStderr: true), group: .own,
        environment: ["GREETING": "hi", "PATH": "/usr/bin:/bin"]))
    #expect(output.status == 0)
    #expect(String(decoding: output.stdout.bytes, as: UTF8.self) == "6789\nhi\n")
    #expect(output.stdout.dropped == 6)
  }

  @Test func reportsASignalAsOneTwentyEightPlusItsNumber() async throws {
    let output = try await ChildProcess.run(["/bin/sh", "-c", "kill -TERM $$"], SpawnOptions())
    #expect(output.ended == .signalled(SIGTERM))
    #expect(output.status == 128 + SIGTERM)
  }

  @Test func appendsToALogFileInItsOwnGroup() async throws {
    let path = NSTemporaryDirectory() + "sixty-process-\(UUID().uuidString).log"
    defer { unlink(path) }
    for word in ["one", "two"] {
      let output = try await ChildProcess.run(
        ["/bin/sh", "-c", "echo \(word); echo $(ps -o pgid= -p $$) $$ >&2"],
        SpawnOptions(output: .appending(to: path), group: .own))
      #expect(output.status == 0)
    }
    let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
    #expect(lines.count == 4)
    #expect(lines[0] == "one" && lines[2] == "two")
    // The group's id is the child's own pid.
    let ids = lines[1].split(separator: " ")
    #expect(ids.count == 2 && ids[0] == ids[1])
    var info = stat()
    #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
  }

  @Test func failuresNameTheProgramOrTheFile() async throws {
    await #expect(throws: ProcessError.self) {
      _ = try await ChildProcess.run(["/nonexistent/program"], SpawnOptions())
    }
    do {
      _ = try await ChildProcess.run(["/nonexistent/program"], SpawnOptions())
    } catch let error as ProcessError {
      #expect(error.description == "cannot run /nonexistent/program: No such file or directory.")
    }
    do {
      _ = try await ChildProcess.run(["true"], SpawnOptions(output: .appending(to: "/nonexistent/dir/log")))
    } catch let error as ProcessError {
      #expect(error.step == .open("/nonexistent/dir/log") && error.code == ENOENT)
    }
  }
}
