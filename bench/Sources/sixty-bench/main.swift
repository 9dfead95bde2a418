// sixty-bench: load generator for bench/broker-load.sh. Pushes signed SendSSHPublicKey requests
// through Sixty's own client and fetches agent key lists, and prints throughput and latency.
//
//   sixty-bench push  ENDPOINT KEY_ID SECRET INSTANCE_ID USER COUNT CONCURRENCY
//   sixty-bench fetch BROKER INSTANCE_ID USER TOKEN COUNT CONCURRENCY
import Foundation
import InstanceConnect
import SixtyKeys

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

func percentile(_ sorted: [Double], _ p: Double) -> Double {
  guard !sorted.isEmpty else { return 0 }
  return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

/// Runs `count` operations with `concurrency` workers; returns wall seconds and sorted latencies.
func load(count: Int, concurrency: Int, _ operation: @escaping @Sendable (Int) async throws -> Void) async throws
  -> (Double, [Double])
{
  let start = Date()
  let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
    for worker in 0..<concurrency {
      group.addTask {
        var mine: [Double] = []
        var index = worker
        while index < count {
          let t0 = DispatchTime.now().uptimeNanoseconds
          try await operation(index)
          mine.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
          index += concurrency
        }
        return mine
      }
    }
    var all: [Double] = []
    for try await part in group { all += part }
    return all.sorted()
  }
  return (Date().timeIntervalSince(start), latencies)
}

func report(_ what: String, _ wall: Double, _ latencies: [Double]) {
  print(
    String(
      format: "%@: %d in %.2f s = %.0f/s; latency ms p50 %.2f p99 %.2f max %.2f", what, latencies.count, wall,
      Double(latencies.count) / wall, percentile(latencies, 0.5), percentile(latencies, 0.99), latencies.last ?? 0))
}

let args = Array(CommandLine.arguments.dropFirst())
switch args.first {
case "push" where args.count == 8:
  let client = InstanceConnectClient(
    region: "us-east-1",
    credentials: AWSCredentials(accessKeyID: args[2], secretAccessKey: args[3], source: "bench"),
    endpoint: URL(string: args[1]), retry: .none)
  let key = try SSHKeyPair.generate(.ed25519, comment: "bench").authorizedKey
  let request = SendSSHPublicKeyRequest(instanceID: args[4], osUser: args[5], publicKey: key)
  _ = try await client.sendSSHPublicKey(request)  // warm the connection
  let (wall, latencies) = try await load(count: Int(args[6])!, concurrency: Int(args[7])!) { _ in
    _ = try await client.sendSSHPublicKey(request)
  }
  report("push", wall, latencies)
case "fetch" where args.count == 7:
  var components = URLComponents(string: args[1] + "/agent/v1/keys")!
  components.queryItems = [URLQueryItem(name: "instance_id", value: args[2]), URLQueryItem(name: "user", value: args[3])]
  var request = URLRequest(url: components.url!)
  request.setValue("Bearer \(args[4])", forHTTPHeaderField: "Authorization")
  let session = URLSession(configuration: .ephemeral)
  let fixed = request
  let (wall, latencies) = try await load(count: Int(args[5])!, concurrency: Int(args[6])!) { _ in
    let (_, response) = try await session.data(for: fixed)
    guard (response as? HTTPURLResponse)?.statusCode == 200 else { throw URLError(.badServerResponse) }
  }
  report("fetch", wall, latencies)
default:
  FileHandle.standardError.write(
    Data(
      "usage: sixty-bench push ENDPOINT KEY_ID SECRET INSTANCE_ID USER COUNT CONCURRENCY | fetch BROKER INSTANCE_ID USER TOKEN COUNT CONCURRENCY\n"
        .utf8))
  exit(2)
}
