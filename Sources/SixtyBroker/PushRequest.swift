import Foundation
import InstanceConnect

/// The JSON body of `SendSSHPublicKey`, checked against the service model's constraints.
struct PushRequest {
  var instanceID: String
  var osUser: String
  var publicKey: String
  var availabilityZone: String?

  static func decode(_ body: [UInt8], serial: Bool) throws(BrokerError) -> PushRequest {
    let parsed: StrictJSON.Value
    do {
      parsed = try StrictJSON.parse(body)
    } catch {
      switch error {
      case .duplicateKey(let key):
        throw BrokerError.invalidArgs(
          "The request body names the parameter \(HostileText.excerpt(key, limit: 40)) twice; each parameter may appear once.",
          reason: "duplicate_parameter")
      case .syntax(let what):
        throw BrokerError.invalidArgs("The request body is not JSON: \(what).", reason: "bad_json")
      }
    }
    guard case .object(let members) = parsed else {
      throw BrokerError.invalidArgs("The request body is not a JSON object.", reason: "bad_json")
    }
    let allowed: Set<String> =
      serial
      ? ["InstanceId", "SerialPort", "SSHPublicKey"]
      : ["InstanceId", "InstanceOSUser", "SSHPublicKey", "AvailabilityZone"]
    if let unknown = members.first(where: { !allowed.contains($0.key) }) {
      throw BrokerError.invalidArgs(
        "Unknown parameter \(HostileText.excerpt(unknown.key, limit: 40)); expected \(allowed.sorted().joined(separator: ", ")).",
        reason: "unknown_parameter")
    }
    var object: [String: StrictJSON.Value] = [:]
    for member in members { object[member.key] = member.value }
    func string(_ key: String) throws(BrokerError) -> String {
      guard case .string(let value)? = object[key] else {
        throw BrokerError.invalidArgs("\(key) is required and must be a string.", reason: "missing_parameter")
      }
      return value
    }
    let instance = try string("InstanceId")
    guard InstanceConnectValidation.isInstanceID(instance) else {
      throw BrokerError.invalidArgs(
        "InstanceId must match ^i-[a-f0-9]+$ with 10 to 32 characters.", reason: "bad_instance_id")
    }
    let key = try string("SSHPublicKey")
    guard InstanceConnectValidation.publicKeyLength.contains(key.utf8.count) else {
      throw BrokerError.invalidArgs(
        "SSHPublicKey must be 80 to 4096 characters long.", reason: "bad_key_length")
    }
    if serial {
      return PushRequest(instanceID: instance, osUser: "", publicKey: key, availabilityZone: nil)
    }
    let user = try string("InstanceOSUser")
    guard InstanceConnectValidation.isOSUser(user) else {
      throw BrokerError.invalidArgs("InstanceOSUser is not a valid OS user name.", reason: "bad_os_user")
    }
    var zone: String?
    if object["AvailabilityZone"] != nil {
      let value = try string("AvailabilityZone")
      guard InstanceConnectValidation.isAvailabilityZone(value) else {
        throw BrokerError.invalidArgs(
          "AvailabilityZone is not a valid availability zone name.", reason: "bad_zone")
      }
      zone = value
    }
    return PushRequest(instanceID: instance, osUser: user, publicKey: key, availabilityZone: zone)
  }
}
