import Crypto
import Foundation
import InstanceConnect
import SixtyAudit
import SixtyKeys
import Testing

@testable import SixtyAgentCore
@testable import SixtyBroker

/// Replays, what a principal learns about instances outside its policy, what unauthenticated
/// requests cost, and the strictness of the wire format.
extension BrokerTests {
  /// `request` with its Authorization header rewritten by `transform`.
  func reformatted(_ request: BrokerRequest, _ transform: (String) -> String) -> BrokerRequest {
    var copy = request
    copy.headers = copy.headers.map { $0.name == "Authorization" ? ($0.name, transform($0.value)) : $0 }
    return copy
  }

  /// The spellings of one signature that the SigV4 parser accepts: no spaces after the commas,
  /// fields reordered, extra spaces.
  func respellings(_ request: BrokerRequest) -> [BrokerRequest] {
    let header = request.header("Authorization")!
    let fields = header.dropFirst("AWS4-HMAC-SHA256 ".count).components(separatedBy: ", ")
    #expect(fields.count == 3, "\(header)")
    return [
      reformatted(request) { $0.replacingOccurrences(of: ", ", with: ",") },
      reformatted(request) { _ in "AWS4-HMAC-SHA256 " + fields.reversed().joined(separator: ", ") },
      reformatted(request) { _ in
        "AWS4-HMAC-SHA256 " + [fields[2], fields[0], fields[1]].joined(separator: " ,  ")
      },
    ]
  }

  func accepted(_ broker: Broker) -> Int { broker.store.count(now: clock.now) }

  // MARK: 1. Replays

  @Test func aReplayWithTheAuthorizationHeaderRespelledIsRefused() throws {
    let broker = try broker()
    let original = request(pushBody())
    #expect(broker.handle(original).status == 200)
    // The key lapses; the captured request is still inside the clock-skew window.
    clock.advance(61)
    #expect(accepted(broker) == 0)
    for replay in respellings(original) {
      let response = broker.handle(replay)
      #expect(response.status == 403, "\(replay.header("Authorization")!)")
      #expect(error(response)?.message.contains("a replayed request is refused") == true)
    }
    #expect(accepted(broker) == 0, "a replay must not bring the lapsed key back")
    let list = try SignedKeyList.verify(
      Data(fetch(broker).body), publicKey: signingKey.publicKey, instanceID: Self.web, osUser: "ops",
      now: clock.now)
    #expect(list.keys.isEmpty)
  }

  /// The access key id in the Credential field is not part of what is signed: spelled with a
  /// Kelvin sign (U+212A) for "K", which `String` equality takes for "K", it must neither find
  /// the principal nor make a new replay key.
  @Test func anAccessKeyIDSpelledWithLookAlikesIsNotThePrincipal() throws {
    let broker = try broker()
    let original = request(pushBody())
    #expect(broker.handle(original).status == 200)
    clock.advance(61)
    let kelvin = reformatted(original) {
      $0.replacingOccurrences(of: "Credential=AKID", with: "Credential=A\u{212A}ID")
    }
    let response = broker.handle(kelvin)
    #expect(response.status == 403)
    #expect(
      error(response)?.type == "UnrecognizedClientException",
      "\(String(decoding: response.body, as: UTF8.self))")
    #expect(accepted(broker) == 0)
  }

  @Test func aReplayAfterARestartIsRefusedWithAReplayCacheFile() throws {
    let path = directory + "/replays"
    let first = try broker()
    let original = request(pushBody())
    let other = request(pushBody(user: "deploy"))
    #expect(first.handle(original).status == 200)
    #expect(first.handle(other).status == 200)
    var info = stat()
    #expect(stat(path, &info) == 0)
    #expect(info.st_mode & 0o777 == 0o600)
    // A new broker process: it reads the file (and compacts it) at start.
    clock.advance(61)
    let restarted = try broker(auditFile: "audit-restarted.jsonl")
    for replay in [original] + respellings(original) {
      let response = restarted.handle(replay)
      #expect(response.status == 403)
      #expect(error(response)?.message.contains("a replayed request is refused") == true)
    }
    #expect(accepted(restarted) == 0)
    // A fresh request is accepted as usual.
    #expect(restarted.handle(request(pushBody())).status == 200)
    // Entries older than twice the skew window are dropped when the file is compacted.
    clock.advance(601)
    let later = try FileReplayCache(path: path, retention: 600, now: clock.now)
    #expect(later.count == 0)
    #expect((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) == 0)
  }

  @Test func aTornLastLineIsIgnoredAndOtherEntriesSurvive() throws {
    let path = directory + "/torn"
    let now = clock.now
    let cache = try FileReplayCache(path: path, retention: 600, now: now)
    #expect(try cache.claim("AKID:aaaa", signedAt: now, now: now) == .fresh)
    #expect(try cache.claim("AKID:aaaa", signedAt: now, now: now) == .replayed)
    let handle = try #require(FileHandle(forWritingAtPath: path))
    handle.seekToEndOfFile()
    handle.write(Data("a 17950000".utf8))  // a crash in the middle of a line
    try handle.close()
    let reopened = try FileReplayCache(path: path, retention: 600, now: now.addingTimeInterval(1))
    #expect(reopened.check("AKID:aaaa", signedAt: now, now: now) == .replayed)
    #expect(try reopened.claim("AKID:bbbb", signedAt: now, now: now) == .fresh)
  }

  @Test func withoutAReplayCacheFileARestartedBrokerRefusesWhatWasSignedBeforeItStarted() throws {
    let first = try broker(memoryFallback: true)
    #expect(first.startupWarnings.contains { $0.contains("accepted signatures are kept in memory only") })
    let original = request(pushBody())
    #expect(first.handle(original).status == 200)
    #expect(first.handle(original).status == 403)
    clock.advance(61)
    let restarted = try broker(memoryFallback: true, auditFile: "audit-restarted.jsonl")
    for replay in [original] + respellings(original) {
      let response = restarted.handle(replay)
      #expect(response.status == 403)
      #expect(error(response)?.message.contains("signed before") == true, "\(error(response)?.message ?? "")")
    }
    #expect(accepted(restarted) == 0)
    // Requests signed since the start are served.
    #expect(restarted.handle(request(pushBody())).status == 200)
  }

  /// A replay cache file that is missing at start (first start, or lost) cannot vouch for what
  /// an earlier broker accepted: requests signed before the start are refused, once; a restart
  /// that finds the file keeps no such cut.
  @Test func aMissingReplayCacheFileRefusesWhatWasSignedBeforeTheStart() throws {
    let path = directory + "/lost"
    let start = clock.now
    let created = try FileReplayCache(
      path: path, retention: 600, now: start, refusingSignedBeforeIfNew: start)
    #expect(created.isNew)
    #expect(
      created.check("k", signedAt: start.addingTimeInterval(-1), now: start) == .signedBeforeFloor(start))
    #expect(try created.claim("k", signedAt: start, now: start) == .fresh)
    let later = start.addingTimeInterval(30)
    let reopened = try FileReplayCache(
      path: path, retention: 600, now: later, refusingSignedBeforeIfNew: later)
    #expect(!reopened.isNew)
    #expect(reopened.check("k", signedAt: start, now: later) == .replayed)
    #expect(reopened.check("other", signedAt: start.addingTimeInterval(1), now: later) == .fresh)
  }

  @Test func copiesOfOneRequestSentAtOnceAreAcceptedOnce() throws {
    let broker = try broker()
    let original = request(pushBody())
    let statuses = Statuses()
    DispatchQueue.concurrentPerform(iterations: 16) { _ in statuses.add(broker.handle(original).status) }
    #expect(statuses.all.filter { $0 == 200 }.count == 1, "\(statuses.all)")
  }

  @Test func aFullReplayCacheForgetsTheOldestAndRefusesWhatItForgot() throws {
    let cache = MemoryReplayCache(retention: 600, capacity: 4, refusingSignedBefore: nil)
    let start = clock.now
    for index in 0..<5 {
      let signed = start.addingTimeInterval(Double(index))
      #expect(cache.claim("k\(index)", signedAt: signed, now: signed) == .fresh)
    }
    #expect(cache.count <= 4)
    // k0 and k1 were forgotten, and everything signed up to k1 is refused instead.
    let now = start.addingTimeInterval(10)
    #expect(cache.check("k0", signedAt: start, now: now) == .signedBeforeFloor(start.addingTimeInterval(2)))
    #expect(cache.check("k1", signedAt: start.addingTimeInterval(1), now: now) != .fresh)
    #expect(cache.check("k4", signedAt: start.addingTimeInterval(4), now: now) == .replayed)
    #expect(cache.check("new", signedAt: start.addingTimeInterval(5), now: now) == .fresh)
    // The file cache keeps the floor across a restart.
    let path = directory + "/full"
    let file = try FileReplayCache(path: path, retention: 600, capacity: 4, now: start)
    for index in 0..<5 {
      let signed = start.addingTimeInterval(Double(index))
      #expect(try file.claim("k\(index)", signedAt: signed, now: signed) == .fresh)
    }
    let reopened = try FileReplayCache(path: path, retention: 600, capacity: 4, now: now)
    #expect(
      reopened.check("k0", signedAt: start, now: now) == .signedBeforeFloor(start.addingTimeInterval(2)))
  }

  // MARK: 2. Nothing about instances outside the policy

  @Test func anInstanceOutsideThePolicyGetsOneAnswerRegisteredOrNot() throws {
    let broker = try broker()
    let unregistered = "i-00000000000000ff"
    func answer(_ instance: String, zone: String? = nil) throws -> (Int, String, String) {
      let response = broker.handle(request(pushBody(instance: instance, zone: zone)))
      let decoded = try #require(error(response))
      return (response.status, decoded.type, decoded.message.replacingOccurrences(of: instance, with: "ID"))
    }
    let outside = try answer(Self.db)
    #expect(outside.1 == "AuthException")
    #expect(try answer(unregistered) == outside)
    // A wrong zone does not name the real one, nor tell the instance exists.
    #expect(try answer(Self.db, zone: "us-east-1a") == outside)
    #expect(try answer(unregistered, zone: "us-east-1a") == outside)
    #expect(
      !String(
        decoding: broker.handle(request(pushBody(instance: Self.db, zone: "us-east-1a"))).body, as: UTF8.self
      ).contains("us-west-2b"))
    // A principal whose policy covers any instance id may learn what is registered and where.
    let wild = broker.handle(
      request(pushBody(instance: unregistered), keyID: Self.wildKeyID, secret: Self.wildSecret))
    #expect(error(wild)?.type == "EC2InstanceNotFoundException")
    let zone = broker.handle(
      request(pushBody(instance: Self.db, zone: "us-east-1a"), keyID: Self.wildKeyID, secret: Self.wildSecret)
    )
    #expect(error(zone)?.message.contains("us-west-2b") == true)
  }

  @Test func theAgentEndpointAnswersAnUnknownInstanceAsAWrongToken() throws {
    let broker = try broker()
    let unknown = fetch(broker, instance: "i-00000000000000ff")
    let wrong = fetch(broker, token: "agent-token-db-1-0123456789")
    let missing = broker.handle(
      BrokerRequest(
        method: "GET", path: "/agent/v1/keys", query: "instance_id=\(Self.web)&user=ops", headers: [],
        body: [],
        remoteAddress: "127.0.0.1"))
    #expect(unknown.status == 401)
    #expect(wrong.status == 401)
    #expect(missing.status == 401)
    #expect(unknown.body == wrong.body)
    #expect(missing.body == wrong.body)
    #expect(fetch(broker).status == 200)
    // Nor does the public /metrics page tell them apart.
    let metrics = String(
      decoding: broker.handle(
        BrokerRequest(method: "GET", path: "/metrics", headers: [], body: [], remoteAddress: nil)
      ).body, as: UTF8.self)
    #expect(!metrics.contains("unknown_instance"), "\(metrics)")
  }

  // MARK: 3. Unauthenticated requests cost bounded space

  func auditSize() -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: directory + "/audit.jsonl")[.size]) as? Int) ?? 0
  }

  @Test func unauthenticatedRequestsCostOneSummaryRecordPerSourceAndMinute() throws {
    let broker = try broker()
    let big = String(repeating: "x", count: 60_000)
    let before = auditSize()
    for index in 0..<1000 {
      var noise: BrokerRequest
      switch index % 4 {
      case 0:  // an unknown operation 60 KB long
        noise = request(pushBody(), operation: big, sign: false)
      case 1:  // a 60 KB junk signature
        noise = request(pushBody())
        noise.headers.append(("X-Junk", big))
        noise = reformatted(noise) { _ in "AWS4-HMAC-SHA256 " + big }
      case 2:  // a wrong secret, with a 60 KB header signed in
        noise = request(pushBody(), secret: "wrong")
        noise.headers.append(("X-Junk", big))
      default:  // an agent fetch with a wrong token and a 60 KB user name
        noise = BrokerRequest(
          method: "GET", path: "/agent/v1/keys", query: "instance_id=\(Self.web)&user=\(big)",
          headers: [("Authorization", "Bearer wrong-wrong-wrong-wrong")], body: [], remoteAddress: "127.0.0.1"
        )
      }
      let response = broker.handle(noise)
      #expect(response.status >= 400)
      #expect(response.body.count < 512, "an answer of \(response.body.count) bytes")
    }
    #expect(auditSize() == before, "nothing is written per unauthenticated request")
    clock.advance(60)
    broker.flushUnauthenticated()
    let growth = auditSize() - before
    #expect(growth > 0 && growth < 700, "the audit log grew by \(growth) bytes")
    let shown = try AuditVerifier.show(path: directory + "/audit.jsonl")
    #expect(shown.last?.contains("unauthenticated refused") == true)
    #expect(shown.last?.contains("1000 requests refused before authentication") == true, "\(shown)")
    // An authenticated push that is refused still gets its own record, at once.
    let refused = broker.handle(request(pushBody(user: "root")))
    #expect(error(refused)?.type == "AuthException")
    let records = try AuditVerifier.show(path: directory + "/audit.jsonl")
    #expect(records.count == shown.count + 1)
    #expect(records.last?.contains("push refused") == true && records.last?.contains(Self.keyID) == true)
    #expect(try AuditVerifier.verify(path: directory + "/audit.jsonl").records == records.count)
  }

  @Test func theUnauthenticatedTableIsBoundedAndSpillsIntoOneBucket() throws {
    let broker = try broker(tally: UnauthenticatedTally(capacity: 2))
    for index in 0..<50 {
      var noise = request(pushBody(), sign: false)
      noise.remoteAddress = "10.0.0.\(index % 5)"
      _ = broker.handle(noise)
    }
    #expect(broker.unauthenticated.trackedSources == 2)
    clock.advance(60)
    broker.flushUnauthenticated()
    let shown = try AuditVerifier.show(path: directory + "/audit.jsonl")
    #expect(shown.count == 3, "\(shown)")
    #expect(shown.contains { $0.contains("source=10.0.0.0") && $0.contains("10 requests") })
    #expect(shown.contains { $0.contains("source=other-sources") && $0.contains("30 requests") })
  }

  @Test func hostileTextInAnswersIsBoundedOnScalars() throws {
    let broker = try broker()
    // One Character made of 20,000 combining scalars: a Character prefix is no bound.
    let combining = "A" + String(repeating: "\u{301}", count: 20_000)
    let response = broker.handle(request(pushBody(), operation: combining, sign: false))
    #expect(response.body.count < 400, "\(response.body.count) bytes")
    #expect(error(response)?.message.contains("bytes)") == true)
    #expect(HostileText.excerpt("a\u{0}b\\c", limit: 64) == "a\\u{0}b\\u{5c}c")
  }

  // MARK: 4. Region, content type, strict JSON

  @Test func withoutARegionTheBrokerAcceptsOnlyUSEast1AndSaysSo() throws {
    let broker = try broker()
    #expect(
      broker.startupWarnings.contains {
        $0.contains("region not set in broker.yml; accepting only requests signed for us-east-1")
      })
    let elsewhere = broker.handle(request(pushBody(), region: "eu-west-1"))
    #expect(elsewhere.status == 403)
    #expect(error(elsewhere)?.message.contains("'us-east-1', not 'eu-west-1'") == true)
    #expect(broker.handle(request(pushBody())).status == 200)
    let set = try self.broker(extra: "region: eu-west-1", auditFile: "audit-eu.jsonl")
    #expect(!set.startupWarnings.contains { $0.contains("region") })
    #expect(set.handle(request(pushBody(user: "deploy"), region: "eu-west-1")).status == 200)
    #expect(set.handle(request(pushBody(user: "deploy"), region: "us-east-1")).status == 403)
  }

  @Test func onlyAWSJSON11IsAccepted() throws {
    let broker = try broker()
    for contentType in ["application/json", "text/plain", "application/x-amz-json-1.0", nil] as [String?] {
      let response = broker.handle(request(pushBody(), contentType: contentType))
      #expect(response.status == 404, "\(contentType ?? "none")")
      #expect(error(response)?.type == "UnknownOperationException")
      #expect(error(response)?.message.contains("expected application/x-amz-json-1.1") == true)
    }
    #expect(broker.handle(request(pushBody(), contentType: "Application/X-Amz-Json-1.1")).status == 200)
    #expect(
      broker.handle(
        request(pushBody(user: "deploy"), contentType: "application/x-amz-json-1.1; charset=utf-8")
      )
      .status == 200)
  }

  @Test func aParameterNamedTwiceIsRefused() throws {
    let broker = try broker()
    let key = self.key.authorizedKey
    for body in [
      "{\"InstanceId\":\"\(Self.web)\",\"InstanceOSUser\":\"ops\",\"InstanceOSUser\":\"root\",\"SSHPublicKey\":\"\(key)\"}",
      "{\"InstanceId\":\"\(Self.web)\",\"InstanceOSUser\":\"ops\",\"Instance\\u004fSUser\":\"root\",\"SSHPublicKey\":\"\(key)\"}",
    ] {
      let response = broker.handle(request(Array(body.utf8)))
      let decoded = try #require(error(response))
      #expect(decoded.type == "InvalidArgsException")
      #expect(decoded.message.contains("InstanceOSUser twice"), "\(decoded.message)")
    }
    #expect(accepted(broker) == 0)
  }

  @Test func theJSONReaderIsStrict() throws {
    func parse(_ text: String) -> Result<StrictJSON.Value, StrictJSON.Failure> {
      Result { () throws(StrictJSON.Failure) in try StrictJSON.parse(Array(text.utf8)) }
    }
    #expect(
      try parse(#" {"a": [1, -2.5e3, true, null, "\u00e9\ud83d\ude00"]} "#).get()
        == .object([("a", .array([.number("1"), .number("-2.5e3"), .bool(true), .null, .string("é😀")]))]))
    for bad in [
      #"{"a":1,"a":2}"#, #"{"a":"\ud800"}"#, #"{"a":1} x"#, #"{"a":01}"#, "{\"a\":\"\u{1}\"}", #"{"a":}"#,
      String(repeating: "[", count: 40) + String(repeating: "]", count: 40), #"{'a':1}"#,
    ] {
      #expect(throws: StrictJSON.Failure.self, "\(bad)") { try StrictJSON.parse(Array(bad.utf8)) }
    }
    #expect(throws: StrictJSON.Failure.self) { try StrictJSON.parse([0x22, 0xFF, 0x22]) }
  }
}

/// Statuses gathered from several threads.
final class Statuses: @unchecked Sendable {
  private let lock = NSLock()
  private var items: [Int] = []
  func add(_ status: Int) { lock.withLock { items.append(status) } }
  var all: [Int] { lock.withLock { items } }
}
