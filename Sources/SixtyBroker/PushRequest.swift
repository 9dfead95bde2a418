import Foundation
import InstanceConnect

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
