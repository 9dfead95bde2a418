import Testing
@testable import SixtyHistory
