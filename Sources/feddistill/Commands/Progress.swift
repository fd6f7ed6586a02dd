import Foundation

/// Progress for long work: an updating status line on a terminal, plain periodic log lines otherwise.
final class ProgressDisplay: @unchecked Sendable {  // used from one task at a time
    private let label: String
    private let interactive: Bool
    private var lastPrint = Date.distantPast
    private var lastDone = -1
    private let interval: TimeInterval

    init(label: String, interval: TimeInterval = 5) {
        self.label = label
        interactive = isatty(STDERR_FILENO) != 0
        self.interval = interactive ? 0.2 : interval
    }

    /// Reports `done` of `total` units; `fields` are shown after the counter.
    func update(done: Int, total: Int, elapsed: Double, fields: [(String, String)], force: Bool = false) {
        let now = Date()
        guard force || (done == total && done != lastDone) || now.timeIntervalSince(lastPrint) >= interval else { return }
        lastPrint = now
        lastDone = done
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let text = "\(label) \(done)/\(total) " + fields.map { "\($0.0) \($0.1)" }.joined(separator: "  ")
            + "  elapsed \(Self.clock(elapsed))  eta \(Self.clock(eta))"
        if interactive {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + text + (done == total ? "\n" : "")).utf8))
        } else {
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// Writes a JSON document to a file, or to standard output for "-".
func writeJSON(_ object: [String: Any], to path: String) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    if path == "-" {
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    } else {
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
