import Foundation

/// Runs a program and returns its status and output (both pipes drained concurrently).
func runTool(_ path: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String)
{
  let process = Process()
  process.executableURL = URL(fileURLWithPath: path)
  process.arguments = arguments
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  process.standardInput = FileHandle.nullDevice
  try process.run()
  nonisolated(unsafe) var stdout = Data()
  nonisolated(unsafe) var stderr = Data()
  let group = DispatchGroup()
  group.enter()
  DispatchQueue.global().async {
    stdout = out.fileHandleForReading.readDataToEndOfFile()
    group.leave()
  }
  group.enter()
  DispatchQueue.global().async {
    stderr = err.fileHandleForReading.readDataToEndOfFile()
    group.leave()
  }
  group.wait()
  process.waitUntilExit()
  return (
    process.terminationStatus, String(decoding: stdout, as: UTF8.self),
    String(decoding: stderr, as: UTF8.self)
  )
}

func temporaryDirectory() throws -> String {
  let path = FileManager.default.temporaryDirectory.appendingPathComponent(
    "sixty-keys-test-\(UUID().uuidString)"
  ).path
  try FileManager.default.createDirectory(
    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
  return path
}

let sshKeygen = "/usr/bin/ssh-keygen"
