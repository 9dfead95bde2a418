import Foundation

/// The JSON body of `SendSSHPublicKey`, checked against the service model's constraints.
struct PushRequest {
  var instanceID: String
  var osUser: String
  var publicKey: String
  var availabilityZone: String?

  static func decode(_ body: [UInt8], serial: Bool) throws(BrokerError) -> PushRequest {
    guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
      throw BrokerError.invalidArgs("The request body is not a JSON object.", reason: "bad_json")
    }
    let allowed: Set<String> =
      serial
      ? ["InstanceId", "SerialPort", "SSHPublicKey"]
      : ["InstanceId", "InstanceOSUser", "SSHPublicKey", "AvailabilityZone"]
    if let unknown = object.keys.first(where: { !allowed.contains($0) }) {
      throw BrokerError.invalidArgs("Unknown parameter \(unknown.prefix(40)).", reason: "unknown_parameter")
    }
    func string(_ key: String) throws(BrokerError) -> String {
      guard let value = object[key] as? String else {
        throw BrokerError.invalidArgs("\(key) is required and must be a string.", reason: "missing_parameter")
      }
      return value
    }
    let instance = try string("InstanceId")
    guard (10...32).contains(instance.count), instance.hasPrefix("i-"),
      instance.dropFirst(2).allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) })
    else {
      throw BrokerError.invalidArgs(
        "InstanceId must match ^i-[a-f0-9]+$ with 10 to 32 characters.", reason: "bad_instance_id")
    }
    let key = try string("SSHPublicKey")
    guard (80...4096).contains(key.utf8.count) else {
      throw BrokerError.invalidArgs(
        "SSHPublicKey must be 80 to 4096 characters long.", reason: "bad_key_length")
    }
    if serial {
      return PushRequest(instanceID: instance, osUser: "", publicKey: key, availabilityZone: nil)
    }
    let user = try string("InstanceOSUser")
    guard isValidOSUser(user) else {
      throw BrokerError.invalidArgs("InstanceOSUser is not a valid OS user name.", reason: "bad_os_user")
    }
    var zone: String?
    if object["AvailabilityZone"] != nil {
      let value = try string("AvailabilityZone")
      guard isValidZone(value) else {
        throw BrokerError.invalidArgs(
          "AvailabilityZone is not a valid availability zone name.", reason: "bad_zone")
      }
      zone = value
    }
    return PushRequest(instanceID: instance, osUser: user, publicKey: key, availabilityZone: zone)
  }

  /// The model's pattern: `^[A-Za-z_][A-Za-z0-9@._-]{0,30}[A-Za-z0-9$_-]?$`, or a name of
  /// 2–32 characters starting with digits followed by a non-digit.
  static func isValidOSUser(_ user: String) -> Bool {
    let chars = Array(user.unicodeScalars)
    guard (1...32).contains(chars.count), chars.allSatisfy(\.isASCII) else { return false }
    func middle(_ c: Unicode.Scalar) -> Bool {
      c.properties.isAlphabetic || ("0"..."9").contains(c) || "@._-".unicodeScalars.contains(c)
    }
    func last(_ c: Unicode.Scalar) -> Bool {
      c.properties.isAlphabetic || ("0"..."9").contains(c) || "$_-".unicodeScalars.contains(c)
    }
    let first = chars[0]
    if first.properties.isAlphabetic || first == "_" {
      if chars.count == 1 { return true }
      let body = chars.dropFirst().dropLast()
      return body.allSatisfy(middle) && (middle(chars.last!) || last(chars.last!)) && body.count <= 30
    }
    // Leading digits, then a letter or one of @._-
    guard chars.count >= 2 else { return false }
    let digits = chars.prefix { ("0"..."9").contains($0) }
    guard !digits.isEmpty, digits.count < chars.count else { return false }
    let next = chars[digits.count]
    guard next.properties.isAlphabetic || "@._-".unicodeScalars.contains(next) else { return false }
    let rest = chars[(digits.count + 1)...]
    guard let tail = rest.last else { return true }
    return rest.dropLast().allSatisfy(middle) && (middle(tail) || last(tail))
  }

  /// `^(\w+-){2,3}\d+\w+$`, 6 to 32 characters (e.g. us-east-1a, us-west-2-lax-1a).
  static func isValidZone(_ zone: String) -> Bool {
    guard (6...32).contains(zone.count) else { return false }
    var parts = zone.split(separator: "-", omittingEmptySubsequences: false)
    guard (3...4).contains(parts.count) else { return false }
    let lastPart = parts.removeLast()
    func word(_ s: Substring) -> Bool {
      !s.isEmpty && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }
    guard parts.allSatisfy(word), word(lastPart), let f = lastPart.first, f.isNumber else { return false }
    let digits = lastPart.prefix { $0.isNumber }
    return digits.count < lastPart.count
  }
}
