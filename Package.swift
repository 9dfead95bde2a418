// swift-tools-version:6.2
import PackageDescription

// Sixty runs on Linux only: the executor watches control sockets with inotify, the runner and the
// agent read /proc, and the agent is linked statically with lld. No Apple platform is declared.
let package = Package(
  name: "Sixty",
  products: [
    .executable(name: "sixty", targets: ["sixty"]),
    .executable(name: "sixty-agent", targets: ["sixty-agent"]),
    .executable(name: "sixty-agent-tls", targets: ["sixty-agent-tls"]),
    .library(name: "SixtyCLI", targets: ["SixtyCLI"]),
    // What the libFuzzer targets in fuzz/ (a package of their own) exercise.
    .library(
      name: "SixtyParsers",
      targets: ["SixtyCore", "SixtyPlaybook", "SixtyCalendar", "InstanceConnect", "SixtyKeys"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    .package(url: "https://github.com/drmohundro/SWXMLHash", from: "8.1.1"),
    .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    .package(url: "https://github.com/apple/swift-nio-ssh", from: "0.15.1"),
  ],
  targets: [
    // Diagnostics, source locations and positioned YAML reading shared by every parser; safe text
    // for terminals, logfmt log lines and file digests.
    .target(
      name: "SixtyCore",
      dependencies: [
        .product(name: "Yams", package: "Yams"), .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Logging", package: "swift-log"),
      ]),
    // Policy model, parsing and the organisation cap.
    .target(name: "SixtyPolicy", dependencies: ["SixtyCore"]),
    // Playbooks, inventories, templating and the per-host task graph.
    .target(name: "SixtyPlaybook", dependencies: ["SixtyCore", "SixtyPolicy"]),
    // Resolved targets, batches, per-host order and policy verdicts; text/JSON/DOT renderers.
    .target(name: "SixtyPlanning", dependencies: ["SixtyCore", "SixtyPolicy", "SixtyPlaybook"]),
    // Ephemeral key pairs, OpenSSH encodings, fingerprints and the wiped key directory.
    .target(
      name: "SixtyKeys",
      dependencies: [
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "_CryptoExtras", package: "swift-crypto"),
      ]),
    // SigV4, the AWS credential chain (STS, SSO, credential_process run through SixtyProcess) and
    // the EC2 Instance Connect client.
    .target(
      name: "InstanceConnect",
      dependencies: [
        "SixtyCore", "SixtyProcess", .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Logging", package: "swift-log"),
      ]),
    // What the broker and `sixty-agent` share: the signed key list and CIDRs. Kept small, since
    // sshd runs the agent on every login.
    .target(
      name: "SixtyAgentCore", dependencies: [.product(name: "Crypto", package: "swift-crypto")],
      swiftSettings: [.unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"])]),
    // The append-only, hash-chained audit log.
    .target(
      name: "SixtyAudit",
      dependencies: ["SixtyCore", .product(name: "Crypto", package: "swift-crypto")]),
    // `sixty broker`: the SendSSHPublicKey-compatible server, key store, policy and agent endpoint.
    .target(
      name: "SixtyBroker",
      dependencies: [
        "SixtyCore", "SixtyAgentCore", "SixtyAudit", "SixtyKeys", "InstanceConnect", "SixtyPostgres",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HummingbirdCore", package: "hummingbird"),
        .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ]),
    // The calendar: cron schedules in IANA time zones, maintenance windows and the jobs file.
    .target(name: "SixtyCalendar", dependencies: ["SixtyCore", "SixtyPolicy"]),
    // EC2 inventory (DescribeInstances), security groups and preflight checks.
    .target(
      name: "SixtyEC2",
      dependencies: [
        "SixtyCore", "SixtyPlaybook", "InstanceConnect", "SixtyAgentCore",
        .product(name: "SWXMLHash", package: "SWXMLHash"),
        .product(name: "Crypto", package: "swift-crypto"),
      ]),
    // PostgreSQL for shared state: `postgresql://` URLs as libpq reads them, a pool with deadlines,
    // migrations applied once by whichever process starts first.
    .target(
      name: "SixtyPostgres",
      dependencies: [
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "Logging", package: "swift-log"),
      ]),
    // Run history, host locks and daemon state in SQLite (GRDB, WAL, migrations), or shared by
    // runners and daemons on several machines in PostgreSQL.
    .target(
      name: "SixtyHistory",
      dependencies: [
        "SixtyCore", "SixtyPostgres", .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
      ]),
    // The run report: JSON, JUnit XML and a self-contained HTML timeline, from one model.
    .target(name: "SixtyReport", dependencies: ["SixtyCore", "SixtyHistory"]),
    // The scheduler of one play: slots, batches, just-in-time pushes, deadlines, cancellation.
    .target(name: "SixtyScheduler"),
    // Child processes: one spawn path, the reaper of this process's children, wait statuses.
    .target(name: "SixtyProcess"),
    // Running tasks with the system OpenSSH client, one ControlMaster connection per host.
    .target(
      name: "SixtyExecution",
      dependencies: [
        "SixtyCore", "SixtyScheduler", "SixtyPlanning", "SixtyPlaybook", "SixtyPolicy", "SixtyProcess",
        "SixtyKeys",
        .product(name: "NIOSSH", package: "swift-nio-ssh"), .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"), .product(name: "Crypto", package: "swift-crypto"),
      ]),
    // The run engine: a RunRequest in; planning, keys, host locks, the scheduler and executor per
    // play, signals, history records and reports; RunEvents out to a RunConsole; an ExitStatus back.
    .target(
      name: "SixtyRun",
      dependencies: [
        "SixtyCore", "SixtyPolicy", "SixtyPlaybook", "SixtyPlanning", "SixtyKeys", "InstanceConnect",
        "SixtyScheduler", "SixtyExecution", "SixtyCalendar", "SixtyHistory", "SixtyReport", "SixtyEC2",
        "SixtyAgentCore", .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      ]),
    // The jobs daemon (a pure state machine and its service) and the run notifications.
    .target(
      name: "SixtyJobs",
      dependencies: [
        "SixtyCore", "SixtyCalendar", "SixtyHistory", "SixtyReport", "SixtyProcess", "SixtyRun",
        "SixtyPlanning", "SixtyPlaybook", "InstanceConnect",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      ]),
    // sshd's AuthorizedKeysCommand: small, fast, fails closed. sshd starts it on every login, so
    // it is one static program: the Swift runtime, FoundationEssentials, swift-crypto and glibc
    // built in. Nothing is loaded or relocated at start (no ld.so, no position-independent
    // relocations): a real fetch costs 2.9 ms of CPU, against 5.3 ms linked against the shared
    // C libraries and 11 ms against the shared Swift runtime and Foundation. It also runs on any
    // x86-64 Linux host, whatever its glibc. Host names are looked up through /etc/hosts and DNS
    // only (CSixtyAgentLookup). The module files used at compile time are the shared ones, whose
    // autolink entries leave out FoundationEssentials' static dependencies, so they are named
    // here; lld, unlike gold, finds them in any order.
    .target(name: "CSixtyAgentLookup"),
    .executableTarget(
      name: "sixty-agent", dependencies: ["SixtyAgentCore", "CSixtyAgentLookup"],
      linkerSettings: [
        .unsafeFlags(
          [
            "-static-executable", "-use-ld=lld", "-lFoundationEssentials", "-l_FoundationCollections",
            "-l_FoundationCShims", "-lswiftSynchronization",
          ],
          .when(platforms: [.linux]))
      ]),
    .executableTarget(name: "sixty-agent-tls", dependencies: ["SixtyAgentCore"]),
    // The command-line interface: each command's run() turns flags into a request, makes one call
    // into a library and renders the result.
    .target(
      name: "SixtyCLI",
      dependencies: [
        "SixtyCore", "SixtyPolicy", "SixtyPlaybook", "SixtyPlanning", "SixtyKeys", "InstanceConnect",
        "SixtyAudit", "SixtyBroker", "SixtyScheduler", "SixtyExecution", "SixtyCalendar", "SixtyRun",
        "SixtyHistory", "SixtyEC2", "SixtyAgentCore", "SixtyReport", "SixtyProcess", "SixtyJobs",
        "SixtyPostgres",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    .executableTarget(name: "sixty", dependencies: ["SixtyCLI"]),
    // One competing runner of bench/lock-contention.sh.
    .executableTarget(
      name: "sixty-lock-bench", dependencies: ["SixtyHistory"], path: "bench/Sources/sixty-lock-bench"),
    // The load generator behind bench/broker-load.sh.
    .executableTarget(
      name: "sixty-bench", dependencies: ["InstanceConnect", "SixtyKeys"], path: "bench/Sources/sixty-bench"),

    .testTarget(
      name: "SixtyCoreTests", dependencies: ["SixtyCore", .product(name: "Logging", package: "swift-log")]),
    .testTarget(
      name: "SixtyPlaybookTests", dependencies: ["SixtyCore", "SixtyPolicy", "SixtyPlaybook"]),
    .testTarget(
      name: "SixtyPlanningTests",
      dependencies: ["SixtyCore", "SixtyPolicy", "SixtyPlaybook", "SixtyPlanning"]),
    .testTarget(name: "SixtyKeysTests", dependencies: ["SixtyKeys"]),
    .testTarget(
      name: "InstanceConnectTests", dependencies: ["InstanceConnect"],
      resources: [.copy("Resources")]),
    .testTarget(
      name: "SixtyCLITests",
      dependencies: [
        "SixtyCLI", "SixtyCalendar", "SixtyHistory", "InstanceConnect", "SixtyReport", "SixtyKeys",
        "SixtyAgentCore", "SixtyJobs", "SixtyProcess", "SixtyPostgres", "SixtyBroker", "SixtyAudit",
        .product(name: "Crypto", package: "swift-crypto"),
      ]),
    .testTarget(
      name: "SixtyRunTests",
      dependencies: ["SixtyRun", "SixtyCore", "SixtyPlanning", "SixtyScheduler", "SixtyHistory"]),
    .testTarget(name: "SixtyAuditTests", dependencies: ["SixtyAudit"]),
    .testTarget(name: "SixtyReportTests", dependencies: ["SixtyReport", "SixtyHistory"]),
    .testTarget(
      name: "SixtyEC2Tests",
      dependencies: [
        "SixtyEC2", "SixtyPlaybook", "SixtyPlanning", "SixtyCore", "InstanceConnect", "SixtyAgentCore",
      ]),
    .testTarget(name: "SixtySchedulerTests", dependencies: ["SixtyScheduler"]),
    .testTarget(
      name: "SixtyExecutionTests",
      dependencies: ["SixtyExecution", "SixtyPlanning", "SixtyScheduler", "SixtyProcess"]),
    .testTarget(name: "SixtyProcessTests", dependencies: ["SixtyProcess"]),
    .testTarget(
      name: "SixtyJobsTests",
      dependencies: [
        "SixtyJobs", "SixtyCalendar", "SixtyCore", "SixtyHistory", "SixtyProcess", "InstanceConnect",
        .product(name: "Logging", package: "swift-log"),
      ]),
    .testTarget(
      name: "SixtyCalendarTests", dependencies: ["SixtyCalendar", "SixtyPolicy", "SixtyCore"],
      exclude: ["Reference"]),
    .testTarget(
      name: "SixtyHistoryTests",
      dependencies: ["SixtyHistory", .product(name: "GRDB", package: "GRDB.swift")]),
    .testTarget(
      name: "SixtyBrokerTests",
      dependencies: ["SixtyBroker", "SixtyAgentCore", "SixtyAudit", "InstanceConnect", "SixtyKeys"]),
  ],
  swiftLanguageModes: [.v6]
)
