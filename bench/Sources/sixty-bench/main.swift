// sixty-bench: load generator for bench/broker-load.sh. Pushes signed SendSSHPublicKey requests
// through Sixty's own client and fetches agent key lists, and prints throughput and latency.
//
//   sixty-bench push  ENDPOINT KEY_ID SECRET INSTANCE_ID USER COUNT CONCURRENCY
//   sixty-bench fetch BROKER INSTANCE_ID USER TOKEN COUNT CONCURRENCY
//
// ENDPOINT and BROKER may be comma-separated lists (replicas of one broker): worker i talks to
// the (i mod n)-th.
//
// Each worker is a thread with one keep-alive HTTP/1.1 connection over a plain socket, so the
// generator costs little CPU next to the server on a small machine; every push is signed afresh
// with Sixty's SigV4 signer (the server verifies each one).
import Foundation
import InstanceConnect
import SixtyKeys

func percentile(_ sorted: [Double], _ p: Double) -> Double {
  guard !sorted.isEmpty else { return 0 }
  return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

/// One keep-alive connection to 127.0.0.1:`port`.
final class Connection {
  var fd: Int32 = -1
  let port: Int
  var buffer = [UInt8](repeating: 0, count: 65536)

  init(port: Int) {
    self.port = port
    open()
  }

  /// (Re)connects; servers without keep-alive (moto) close after each answer.
  func open() {
    if fd >= 0 { close(fd) }
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    let ok = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    precondition(ok == 0, "cannot connect to 127.0.0.1:\(port)")
  }

  /// Sends `request` and reads one response; returns its status.
  func exchange(_ request: [UInt8]) -> Int {
    if let status = attempt(request) { return status }
    open()
    return attempt(request) ?? 0
  }

  func attempt(_ request: [UInt8]) -> Int? {
    var sent = 0
    while sent < request.count {
      let n = request.withUnsafeBytes { write(fd, $0.baseAddress! + sent, request.count - sent) }
      if n <= 0 { return nil }
      sent += n
    }
    var received: [UInt8] = []
    while true {
      let n = read(fd, &buffer, buffer.count)
      if n <= 0 { return nil }
      received += buffer[0..<n]
      guard let end = headerEnd(received) else { continue }
      let head = String(decoding: received[0..<end], as: UTF8.self).lowercased()
      let length =
        head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
        .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
      if received.count >= end + 4 + length {
        if head.contains("connection: close") || head.hasPrefix("http/1.0") { open() }
        return Int(head.split(separator: " ")[1]) ?? 0
      }
    }
  }

  func headerEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for i in 0...(bytes.count - 4)
    where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
      return i
    }
    return nil
  }
}

/// The ports of a comma-separated list of http://127.0.0.1:PORT endpoints.
func ports(_ list: String) -> [Int] {
  list.split(separator: ",").map { URL(string: String($0))?.port ?? 80 }
}

/// Runs `count` requests over `concurrency` connections, spread over `ports`; returns wall seconds
/// and sorted latencies (ms).
func load(
  ports: [Int], count: Int, concurrency: Int, request: @escaping @Sendable (Int) -> [UInt8]
) -> (Double, [Double]) {
  let group = DispatchGroup()
  let lock = NSLock()
  nonisolated(unsafe) var all: [Double] = []
  nonisolated(unsafe) var failures = 0
  let start = Date()
  for worker in 0..<concurrency {
    group.enter()
    Thread.detachNewThread {
      let port = ports[worker % ports.count]
      let connection = Connection(port: port)
      var mine: [Double] = []
      var bad = 0
      var index = worker
      while index < count {
        let bytes = request(port)
        let t0 = DispatchTime.now().uptimeNanoseconds
        if connection.exchange(bytes) != 200 { bad += 1 }
        mine.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        index += concurrency
      }
      close(connection.fd)
      lock.withLock {
        all += mine
        failures += bad
      }
      group.leave()
    }
  }
  group.wait()
  let wall = Date().timeIntervalSince(start)
  if failures > 0 {
    FileHandle.standardError.write(Data("\(failures) requests did not answer 200\n".utf8))
    exit(1)
  }
  return (wall, all.sorted())
}

func report(_ what: String, _ wall: Double, _ latencies: [Double]) {
  print(
    String(
      format: "%@: %d in %.2f s = %.0f/s; latency ms p50 %.2f p99 %.2f max %.2f", what, latencies.count, wall,
      Double(latencies.count) / wall, percentile(latencies, 0.5), percentile(latencies, 0.99),
      latencies.last ?? 0))
}

let args = Array(CommandLine.arguments.dropFirst())
switch args.first {
case "push" where args.count == 8:
  let credentials = AWSCredentials(accessKeyID: args[2], secretAccessKey: args[3], source: "bench")
  let key = try SSHKeyPair.generate(.ed25519, comment: "bench").authorizedKey
  let counter = NSLock()
  nonisolated(unsafe) var sequence = 0
  let (wall, latencies) = load(ports: ports(args[1]), count: Int(args[6])!, concurrency: Int(args[7])!) {
    port in
    let host = "127.0.0.1:\(port)"
    // Each request differs (the key's comment), as real pushes do: the broker refuses replays.
    let n = counter.withLock {
      sequence += 1
      return sequence
    }
    let line = key.split(separator: " ").prefix(2).joined(separator: " ") + " bench-\(n)"
    let body = Array(
      "{\"InstanceId\":\"\(args[4])\",\"InstanceOSUser\":\"\(args[5])\",\"SSHPublicKey\":\"\(line)\"}".utf8)
    var request = SigV4Request(
      method: "POST", path: "/",
      headers: [
        ("Host", host), ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", "AWSEC2InstanceConnectService.SendSSHPublicKey"),
      ], body: body)
    SigV4.sign(
      &request, credentials: credentials, region: "us-east-1", service: "ec2-instance-connect", date: Date())
    var text = "POST / HTTP/1.1\r\n"
    for (name, value) in request.headers { text += "\(name): \(value)\r\n" }
    text += "Content-Length: \(body.count)\r\n\r\n"
    return Array(text.utf8) + body
  }
  report("push", wall, latencies)
case "fetch" where args.count == 7:
  let (wall, latencies) = load(ports: ports(args[1]), count: Int(args[5])!, concurrency: Int(args[6])!) {
    port in
    Array(
      "GET /agent/v1/keys?instance_id=\(args[2])&user=\(args[3]) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAuthorization: Bearer \(args[4])\r\n\r\n"
        .utf8)
  }
  report("fetch", wall, latencies)
default:
  FileHandle.standardError.write(
    Data(
      "usage: sixty-bench push ENDPOINT KEY_ID SECRET INSTANCE_ID USER COUNT CONCURRENCY | fetch BROKER INSTANCE_ID USER TOKEN COUNT CONCURRENCY\n"
        .utf8))
  exit(2)
}
