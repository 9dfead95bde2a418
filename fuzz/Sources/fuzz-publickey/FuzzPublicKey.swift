import Foundation
import FuzzDriver
import SixtyKeys

/// libFuzzer target: arbitrary text as an `SSHPublicKey` value (what the broker accepts from a
/// push and writes into authorized keys).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPublicKey(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  if let key = try? OpenSSHPublicKey.parseStrict(text) {
    // What is accepted is one line of a known type, and reads back as itself.
    let line = key.authorizedKeysLine
    precondition(!line.contains("\n") && !line.contains("\0"), "an accepted key has a newline or NUL")
    precondition(line.hasPrefix("ssh-ed25519 ") || line.hasPrefix("ssh-rsa "), "unexpected key type")
    precondition((try? OpenSSHPublicKey.parseStrict(line))?.fingerprint == key.fingerprint, "round trip")
  }
  return 0
}

@_cdecl("fuzz_publickey_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
  runLibFuzzer(argc, argv) { data, size in data.map { fuzzPublicKey($0, size) } ?? 0 }
}
