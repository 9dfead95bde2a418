// sixty-agent-tls: `sixty-agent` for brokers behind https://, fetching with Foundation's
// URLSession (libcurl). `sixty-agent` runs it itself when the configured broker URL is https.
import Foundation
import SixtyAgentCore

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

AgentMain.run { url, token, deadline in
  var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: deadline)
  request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
  let session = URLSession(configuration: .ephemeral)
  nonisolated(unsafe) var result: (Data?, URLResponse?, (any Error)?)
  let done = DispatchSemaphore(value: 0)
  session.dataTask(with: request) { data, response, error in
    result = (data, response, error)
    done.signal()
  }.resume()
  done.wait()
  if let error = result.2 { throw PlainHTTP.Failure(error.localizedDescription) }
  guard let http = result.1 as? HTTPURLResponse, let body = result.0 else {
    throw PlainHTTP.Failure("the broker sent no answer")
  }
  return (http.statusCode, Array(body))
}
