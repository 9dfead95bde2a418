import Foundation
import Testing

@testable import SixtyExecution

#if os(Linux)
  import Glibc
#endif

/// `struct inotify_event` parsing, on bytes.
@Suite struct InotifyEventTests {
  func event(mask: UInt32, name: String, padTo length: Int? = nil) -> [UInt8] {
    var nameBytes = Array(name.utf8)
    nameBytes += Array(repeating: 0, count: (length ?? (nameBytes.count + 1)) - nameBytes.count)
    func le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xff) } }
    return le(1) + le(mask) + le(0) + le(UInt32(nameBytes.count)) + nameBytes
  }

  @Test func namesOfSeveralEvents() {
    let bytes = event(mask: 0x100, name: "c0", padTo: 16) + event(mask: 0x80, name: "ssh1.log", padTo: 16)
    #expect(ControlSocketWatcher.names(inEvents: bytes, count: bytes.count) == ["c0", "ssh1.log"])
  }

  @Test func anEventWithoutANameAddsNothing() {
    let bytes = event(mask: 0x100, name: "", padTo: 0) + event(mask: 0x100, name: "c2")
    #expect(ControlSocketWatcher.names(inEvents: bytes, count: bytes.count) == ["c2"])
  }

  @Test func onlyTheCountedBytesAreRead() {
    let bytes = event(mask: 0x100, name: "c0", padTo: 4) + event(mask: 0x100, name: "c1", padTo: 4)
    #expect(ControlSocketWatcher.names(inEvents: bytes + [9, 9, 9], count: 20) == ["c0"])
    #expect(ControlSocketWatcher.names(inEvents: bytes, count: 10) == [])
  }

  @Test func anOverflowMeansCheckEverything() {
    let bytes =
      event(mask: 0x100, name: "c0", padTo: 4) + event(mask: ControlSocketWatcher.overflowMask, name: "")
    #expect(ControlSocketWatcher.names(inEvents: bytes, count: bytes.count) == nil)
    #if os(Linux)
      #expect(ControlSocketWatcher.overflowMask == UInt32(IN_Q_OVERFLOW))
    #endif
  }
}
