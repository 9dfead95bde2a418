import Foundation
import FuzzDriver
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

@_cdecl("fuzz_playbook_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
  runLibFuzzer(argc, argv) { data, size in data.map { fuzzPlaybook($0, size) } ?? 0 }
}
