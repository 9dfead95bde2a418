import Foundation

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// A request to send: what was signed is exactly what goes out.
public struct HTTPRequest: Sendable {
  public var url: URL
  public var method: String
  public var headers: [(name: String, value: String)]
  public var body: [UInt8]

  public init(url: URL, method: String, headers: [(name: String, value: String)], body: [UInt8]) {
    self.url = url
    self.method = method
    self.headers = headers
    self.body = body
  }
}

public struct HTTPResponse: Sendable {
  public var status: Int
  /// Header names in lowercase.
  public var headers: [String: String]
  public var body: [UInt8]

  public init(status: Int, headers: [String: String], body: [UInt8]) {
    self.status = status
    self.headers = headers
    self.body = body
  }
}

/// Sends HTTP requests; the client takes one so tests can use fakes.
public protocol HTTPTransport: Sendable {
  func send(_ request: HTTPRequest) async throws -> HTTPResponse
}

/// `URLSession` (libcurl on Linux) with one shared session, so consecutive pushes reuse the
/// keep-alive connection.
public final class URLSessionTransport: HTTPTransport {
  let session: URLSession

  public init(timeout: TimeInterval = 10) {
    let configuration = URLSessionConfiguration.ephemeral
    configuration.timeoutIntervalForRequest = timeout
    configuration.timeoutIntervalForResource = timeout * 3
    configuration.httpMaximumConnectionsPerHost = 32
    configuration.urlCache = nil
    configuration.httpCookieStorage = nil
    session = URLSession(configuration: configuration)
  }

  deinit { session.finishTasksAndInvalidate() }

  public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
    var urlRequest = URLRequest(url: request.url)
    urlRequest.httpMethod = request.method
    for (name, value) in request.headers where name.lowercased() != "host" {
      urlRequest.setValue(value, forHTTPHeaderField: name)
    }
    urlRequest.httpBody = Data(request.body)
    let (data, response) = try await session.data(for: urlRequest)
    guard let http = response as? HTTPURLResponse else {
      throw URLError(.badServerResponse)
    }
    var headers: [String: String] = [:]
    for (key, value) in http.allHeaderFields {
      if let key = key as? String, let value = value as? String { headers[key.lowercased()] = value }
    }
    return HTTPResponse(status: http.statusCode, headers: headers, body: Array(data))
  }
}
