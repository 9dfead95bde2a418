import Foundation
import SixtyCore
import SixtyPlaybook

/// libFuzzer target: arbitrary bytes as a playbook file (YAML reading, structure, templates,
/// the task graph). It must never crash, hang or allocate without bound.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPlaybook(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Data(bytes: data, count: size)
  let (node, _) = YAMLLoader.parse(data: bytes, file: "fuzz.yml")
  if let node {
    var reader = NodeReader()
    _ = PlaybookParser.parse(node, path: "fuzz.yml", reader: &reader)
    _ = InventoryParser.parse(node, file: "fuzz.yml", reader: &reader)
  }
  return 0
}

// SwiftPM links an executable's entry point as `fuzz_playbook_main`: hand the process to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
  _ argc: UnsafeMutablePointer<CInt>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("fuzz_playbook_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
  var count = argc
  var arguments = argv
  return llvmFuzzerRunDriver(&count, &arguments) { data, size in
    guard let data else { return 0 }
    return fuzzPlaybook(data, size)
  }
}
