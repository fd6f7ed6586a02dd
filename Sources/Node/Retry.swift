import Foundation
import GRPCCore
import Logging

/// Retries transient failures (coordinator unreachable, busy or restarting) with exponential backoff and full jitter:
/// attempt k waits a uniform random time in [0, min(30 s, 0.25 s · 2^k)].
public struct RetryPolicy: Sendable {
    /// Attempts in all, the first included.
    public var maxAttempts: Int
    /// The codes worth another attempt.
    public static let retryableCodes: Set<RPCError.Code> = [.unavailable, .deadlineExceeded, .resourceExhausted]

    public init(maxAttempts: Int) {
        self.maxAttempts = maxAttempts
    }

    /// Runs `body` until it succeeds, fails with a code that is not retryable, or the attempts run out.
    public func run<T: Sendable>(_ what: String, logger: Logger, _ body: () async throws -> T) async throws -> T {
        var attempt = 0
        var rng = SystemRandomNumberGenerator()
        while true {
            do {
                return try await body()
            } catch let error as RPCError where Self.retryableCodes.contains(error.code) && attempt + 1 < maxAttempts {
                attempt += 1
                let ceiling = min(30.0, 0.25 * pow(2.0, Double(attempt)))
                let delay = Double.random(in: 0...ceiling, using: &rng)
                logger.notice("retrying", metadata: ["operation": "\(what)", "attempt": "\(attempt)", "delay.seconds": "\(delay)",
                                                     "code": "\(error.code)"])
                try await Task.sleep(for: .seconds(delay))
            }
        }
    }
}
