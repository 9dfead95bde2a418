import CSixtyAgentLookup
import SixtyAgentCore

// sixty-agent: sshd's AuthorizedKeysCommand (see AgentMain in SixtyAgentCore).
//
//   AuthorizedKeysCommand /usr/local/bin/sixty-agent %u %f
//   AuthorizedKeysCommandUser sixty-agent
//
// It fetches the key list over plain HTTP with its own small client, so a login does not pay
// for loading libcurl; the list is signed by the broker, and the agent checks the signature.
// For an https:// broker it hands over to `sixty-agent-tls` (next to it), which uses
// Foundation's URLSession, and which goes on with the rest of a list of brokers.
#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

#if canImport(Glibc)
  import Glibc
#endif

AgentMain.run { attempt in
  let url = attempt.url
  if url.scheme == "https" {
    // /proc/self/exe: the real path of this program, whatever sshd was told. The helper goes
    // on from this broker (an https one may be followed by http ones) within the same deadline.
    let own =
      (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
      ?? CommandLine.arguments[0]
    let helper = URL(fileURLWithPath: own).deletingLastPathComponent().appendingPathComponent(
      "sixty-agent-tls"
    ).path
    let argv = [helper] + attempt.handoff
    let pointers = argv.map { strdup($0) } + [nil]
    execv(helper, pointers)
    throw PlainHTTP.Failure(
      "an https broker needs \(helper), which cannot be run (\(String(cString: strerror(errno))))")
  }
  // Linked statically: no NSS module may be loaded to look the broker's name up. An address
  // needs no lookup (and pinning reads nsswitch.conf), so only a name pins it.
  if let host = url.host, CIDR.parseAddress(host) == nil {
    guard sixty_agent_pin_host_lookup() == 0 else {
      throw PlainHTTP.Failure("the host name lookup could not be limited to /etc/hosts and DNS")
    }
  }
  let response = try PlainHTTP.get(
    url, headers: [("Authorization", "Bearer \(attempt.token)")], timeout: attempt.timeout)
  return (response.status, response.body)
}
