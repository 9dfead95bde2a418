import Foundation
import InstanceConnect

/// libFuzzer target: arbitrary text as an `Authorization` header, and as a whole request for the
/// verifier (what the broker does with every request it receives).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSigV4(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  let text = String(decoding: bytes, as: UTF8.self)
  _ = try? SigV4.parseAuthorization(text)
  let lines = text.split(separator: "\n", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
  let request = SigV4Request(
    method: "POST", path: lines.first ?? "/", query: lines.count > 1 ? lines[1] : "",
    headers: [
      ("Host", "127.0.0.1"), ("X-Amz-Date", lines.count > 2 ? lines[2] : "20270101T000000Z"),
      ("Authorization", text),
    ], body: bytes)
  _ = try? SigV4.verify(
    request: request, secretFor: { $0 == "AKIDEXAMPLE" ? "secret" : nil },
    now: Date(timeIntervalSince1970: 1_798_761_600), maxSkew: 300)
  return 0
}

// SwiftPM links an executable's entry point as `fuzz_sigv4_main`: hand the process to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
  _ argc: UnsafeMutablePointer<CInt>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("fuzz_sigv4_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
  var count = argc
  var arguments = argv
  return llvmFuzzerRunDriver(&count, &arguments) { data, size in
    guard let data else { return 0 }
    return fuzzSigV4(data, size)
  }
}
