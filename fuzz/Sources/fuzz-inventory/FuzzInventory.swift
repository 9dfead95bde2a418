import Foundation
import FuzzDriver
import SixtyCore
import SixtyPlaybook

/// libFuzzer target: arbitrary bytes as an inventory in any format `-i` reads (Ansible INI and
/// YAML, pssh, Sixty's YAML) and, line by line, as host selectors. It must never crash, hang or
/// allocate without bound, and a result is an inventory or errors, never both.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInventory(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  let (inventory, diagnostics) = InventoryFormat.parse(text: text, file: "fuzz")
  if inventory != nil && diagnostics.contains(where: { $0.severity == .error }) {
    fatalError("inventory with errors")
  }
  for line in text.split(separator: "\n").prefix(64) {
    _ = try? HostSelector(parsing: String(line))
  }
  return 0
}

@_cdecl("fuzz_inventory_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
  runLibFuzzer(argc, argv) { data, size in data.map { fuzzInventory($0, size) } ?? 0 }
}
