/// A failure of the executor, as a sentence naming what is at fault.
public struct ExecutionError: Error, CustomStringConvertible, Sendable {
  public var description: String
  public init(_ description: String) { self.description = description }
}
