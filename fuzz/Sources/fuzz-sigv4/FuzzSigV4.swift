import Foundation
import FuzzDriver
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

@_cdecl("fuzz_sigv4_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
  runLibFuzzer(argc, argv) { data, size in data.map { fuzzSigV4($0, size) } ?? 0 }
}
