import Foundation
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

// SwiftPM links an executable's entry point as `fuzz_publickey_main`: hand the process to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
  _ argc: UnsafeMutablePointer<CInt>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("fuzz_publickey_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
  var count = argc
  var arguments = argv
  return llvmFuzzerRunDriver(&count, &arguments) { data, size in
    guard let data else { return 0 }
    return fuzzPublicKey(data, size)
  }
}
