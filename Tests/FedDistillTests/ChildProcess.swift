import Foundation

/// A `feddistill` child process for end-to-end tests: its stdout and stderr are collected as they arrive, and a
/// test waits for a pattern or for the exit, never for a fixed time.
final class ChildProcess: @unchecked Sendable {
    enum Failure: Error, CustomStringConvertible {
        case ended(name: String, waitingFor: String, output: String)
        var description: String {
            switch self {
            case let .ended(name, pattern, output): "\(name) ended before printing /\(pattern)/; its output:\n\(output)"
            }
        }
    }

    let name: String
    let process = Process()
    private let lock = NSLock()
    private var text = ""
    private var outputClosed = false
    private var exitStatus: Int32?
    private var lineWaiters: [(pattern: String, continuation: CheckedContinuation<[String], any Error>)] = []
    private var exitWaiters: [CheckedContinuation<Int32, Never>] = []

    /// The debug `feddistill` binary beside the test bundle.
    static var binary: String {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [directory, directory.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("feddistill").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return ".build/debug/feddistill"
    }

    init(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                self?.closeOutput()
            } else {
                self?.append(String(decoding: data, as: UTF8.self))
            }
        }
        process.terminationHandler = { [weak self] process in self?.exited(process.terminationStatus) }
        try process.run()
    }

    var output: String { lock.withLock { text } }

    private func append(_ chunk: String) {
        let ready: [(CheckedContinuation<[String], any Error>, [String])] = lock.withLock {
            text += chunk
            var ready: [(CheckedContinuation<[String], any Error>, [String])] = []
            lineWaiters.removeAll { waiter in
                guard let match = Self.match(waiter.pattern, in: text) else { return false }
                ready.append((waiter.continuation, match))
                return true
            }
            return ready
        }
        for (continuation, match) in ready { continuation.resume(returning: match) }
    }

    private func closeOutput() {
        let waiting = lock.withLock {
            outputClosed = true
            defer { lineWaiters.removeAll() }
            return lineWaiters
        }
        for waiter in waiting {
            waiter.continuation.resume(throwing: Failure.ended(name: name, waitingFor: waiter.pattern, output: output))
        }
    }

    private func exited(_ status: Int32) {
        let waiting = lock.withLock {
            exitStatus = status
            defer { exitWaiters.removeAll() }
            return exitWaiters
        }
        for waiter in waiting { waiter.resume(returning: status) }
    }

    /// The first match of `pattern` (a regular expression, whole output): the whole match and its captures.
    static func match(_ pattern: String, in text: String) -> [String]? {
        guard let regex = try? NSRegularExpression(pattern: pattern),
              let found = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else { return nil }
        return (0..<found.numberOfRanges).map { index in
            Range(found.range(at: index), in: text).map { String(text[$0]) } ?? ""
        }
    }

    /// Waits until the output matches `pattern`; throws if the process's output ends first.
    @discardableResult
    func waitFor(_ pattern: String) async throws -> [String] {
        try await withCheckedThrowingContinuation { continuation in
            let immediate: Result<[String], any Error>? = lock.withLock {
                if let match = Self.match(pattern, in: text) { return .success(match) }
                if outputClosed { return .failure(Failure.ended(name: name, waitingFor: pattern, output: text)) }
                lineWaiters.append((pattern, continuation))
                return nil
            }
            if let immediate { continuation.resume(with: immediate) }
        }
    }

    /// Waits for the exit status.
    func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status: Int32? = lock.withLock {
                if let exitStatus { return exitStatus }
                exitWaiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Sends `signal` (SIGKILL by default: a crash, no clean-up).
    func kill(_ signal: Int32 = SIGKILL) {
        if process.isRunning { Foundation.kill(process.processIdentifier, signal) }
    }

    deinit { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }
}
