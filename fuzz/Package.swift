// swift-tools-version:6.2
// libFuzzer targets for Sixty's parsers; fuzz/run.sh builds them with -sanitize=fuzzer and runs them.
import PackageDescription

let fuzzer: [SwiftSetting] = [.unsafeFlags(["-parse-as-library", "-sanitize=fuzzer"])]
let linkFuzzer: [LinkerSetting] = [.unsafeFlags(["-sanitize=fuzzer"])]

let package = Package(
  name: "SixtyFuzz",
  dependencies: [.package(name: "Sixty", path: "..")],
  targets: [.target(name: "FuzzDriver", swiftSettings: fuzzer)]
    + ["playbook", "cron", "sigv4", "publickey", "quote", "inventory"].map { name in
      .executableTarget(
        name: "fuzz-\(name)", dependencies: ["FuzzDriver", .product(name: "SixtyParsers", package: "Sixty")],
        path: "Sources/fuzz-\(name)", swiftSettings: fuzzer, linkerSettings: linkFuzzer)
    },
  swiftLanguageModes: [.v6]
)
