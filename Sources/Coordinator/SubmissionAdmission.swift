import GRPCCore

/// Who may upload right now: at most one `Submit` stream per node, and at most `maxBytesInFlight` envelope bytes
/// being received by all streams together (each stream reserves its announced size before the coordinator allocates
/// anything for it). A refusal is `resourceExhausted` with a reason; nodes retry those with backoff.
public actor SubmissionAdmission {
    public let maxBytesInFlight: Int
    private var uploading: [String: Int] = [:]
    public private(set) var bytesInFlight = 0

    public init(maxBytesInFlight: Int) {
        self.maxBytesInFlight = maxBytesInFlight
    }

    /// Starts an upload for `node`; refused while another one from the same node is in progress.
    public func begin(node: String) throws(RPCError) {
        guard uploading[node] == nil else {
            throw RPCError(code: .resourceExhausted,
                           message: "a submission from this node is already in progress; one at a time per node")
        }
        uploading[node] = 0
    }

    /// Reserves `bytes` for `node`'s upload (its announced envelope size); refused when the coordinator is already
    /// receiving as much as it allows at once.
    public func reserve(_ bytes: UInt64, for node: String) throws(RPCError) {
        guard let held = uploading[node] else {
            throw RPCError(code: .internalError, message: "no upload in progress for this node")
        }
        guard bytes <= UInt64(maxBytesInFlight), Int(bytes) <= maxBytesInFlight - bytesInFlight else {
            throw RPCError(code: .resourceExhausted,
                           message: "the coordinator is receiving \(bytesInFlight) bytes already (limit \(maxBytesInFlight)); "
                               + "an envelope of \(bytes) bytes must wait; retry")
        }
        uploading[node] = held + Int(bytes)
        bytesInFlight += Int(bytes)
    }

    /// Ends `node`'s upload and releases what it reserved.
    public func end(node: String) {
        if let held = uploading.removeValue(forKey: node) { bytesInFlight -= held }
    }

    /// Runs `body` as `node`'s one upload; `body` receives a function that reserves bytes for it.
    public nonisolated func upload<T: Sendable>(
        node: String, _ body: (_ reserve: @Sendable @escaping (UInt64) async throws -> Void) async throws -> T
    ) async throws -> T {
        try await begin(node: node)
        do {
            let result = try await body { bytes in try await self.reserve(bytes, for: node) }
            await end(node: node)
            return result
        } catch {
            await end(node: node)
            throw error
        }
    }
}
