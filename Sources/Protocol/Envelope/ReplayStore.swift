import Synchronization

/// What identifies one accepted envelope: the same node may not submit the same nonce twice in a round.
public struct ReplayKey: Sendable, Hashable {
    /// The round the envelope was for.
    public var roundID: UInt64
    /// The node that signed it.
    public var nodeID: String
    /// The envelope's 24-byte nonce.
    public var nonce: [UInt8]

    /// Creates a key.
    /// - Parameters:
    ///   - roundID: The round.
    ///   - nodeID: The node.
    ///   - nonce: The envelope nonce.
    public init(roundID: UInt64, nodeID: String, nonce: [UInt8]) {
        self.roundID = roundID
        self.nodeID = nodeID
        self.nonce = nonce
    }
}

/// Remembers verified envelopes so that a replayed one is refused. The coordinator keeps one in memory per process;
/// across restarts its database allows one stored envelope per node and round, so an old envelope replayed after a
/// restart is either the stored one (idempotent) or refused as a conflicting submission.
public protocol ReplayStore: Sendable {
    /// Records `key` if it was not recorded before.
    /// - Parameter key: The envelope's identity.
    /// - Returns: `true` if the key is new and is now recorded, `false` if it was already there (a replay).
    /// - Throws: If the store cannot be read or written.
    func recordIfAbsent(_ key: ReplayKey) async throws -> Bool
}

/// A `ReplayStore` in memory, guarded by a `Mutex`; forgets everything when the process ends.
public final class InMemoryReplayStore: ReplayStore {
    private let keys = Mutex<Set<ReplayKey>>([])

    /// Creates an empty store.
    public init() {}

    /// Records `key` unless present.
    /// - Parameter key: The envelope's identity.
    /// - Returns: `true` if the key was new.
    public func recordIfAbsent(_ key: ReplayKey) async throws -> Bool {
        keys.withLock { $0.insert(key).inserted }
    }

    /// The number of recorded envelopes.
    public var count: Int { keys.withLock { $0.count } }
}
