// sixty-agent-tls: `sixty-agent` for brokers behind https://, fetching with Foundation's
// URLSession (libcurl). `sixty-agent` runs it itself when it comes to an https broker; from
// there on this program tries the rest of the list (http brokers with the agent's own client).
import Foundation
import SixtyAgentCore
import Synchronization

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

AgentMain.run { attempt in
  if attempt.url.scheme == "http" {
    let response = try PlainHTTP.get(
      attempt.url, headers: [("Authorization", "Bearer \(attempt.token)")], timeout: attempt.timeout)
    return (response.status, response.body)
  }
  var request = URLRequest(
    url: attempt.url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: attempt.timeout)
  request.setValue("Bearer \(attempt.token)", forHTTPHeaderField: "Authorization")
  let session = URLSession(configuration: .ephemeral)
  // Written by the completion handler, read after it signalled (or never, past the timeout).
  let result = Mutex<(Data?, URLResponse?, (any Error)?)?>(nil)
  let done = DispatchSemaphore(value: 0)
  let task = session.dataTask(with: request) { data, response, error in
    result.withLock { $0 = (data, response, error) }
    done.signal()
  }
  task.resume()
  // URLSession's timeout is an idle timeout; the attempt's share is for the whole request.
  guard done.wait(timeout: .now() + attempt.timeout) == .success, let answer = result.withLock({ $0 }) else {
    task.cancel()
    throw PlainHTTP.Failure("no answer within the deadline", isTimeout: true)
  }
  if let error = answer.2 {
    if (error as NSError).code == NSURLErrorTimedOut {
      throw PlainHTTP.Failure("no answer within the deadline", isTimeout: true)
    }
    throw PlainHTTP.Failure(error.localizedDescription)
  }
  guard let http = answer.1 as? HTTPURLResponse, let body = answer.0 else {
    throw PlainHTTP.Failure("the broker sent no answer")
  }
  return (http.statusCode, Array(body))
}
