import Testing

@testable import SixtyCore

/// Log lines carry strings from the network (peer addresses, errors naming values): no value can
/// break a line, drive the terminal or grow without bound.
@Suite struct LogfmtHandlerTests {
  @Test func valuesAreEscapedAndBounded() {
    #expect(LogfmtHandler.quote("plain-value") == "plain-value")
    #expect(LogfmtHandler.quote("a b") == "\"a b\"")
    #expect(
      LogfmtHandler.quote("\u{1B}[2Kpush accepted\r\n\u{9B}\u{202E}x\u{2028}")
        == "\"\\u001b[2Kpush accepted\\r\\n\\u009b\\u202ex\\u2028\"")
    let long = LogfmtHandler.quote(String(repeating: "é", count: 70_000))
    #expect(long.unicodeScalars.count < 2100)
    #expect(long.hasSuffix("…[truncated, 67952 more characters]\""))
  }
}
