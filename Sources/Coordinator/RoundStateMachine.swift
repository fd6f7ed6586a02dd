import Foundation

/// The life of one round, as pure logic: events in, actions out, no I/O and an injected clock.
///
/// A round is open until every expected node has submitted or declined (close at once, or fail without the quorum),
/// or until the deadline, when it closes if at least `quorum` nodes submitted and fails otherwise.
public struct RoundStateMachine: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case open, closed, failed(reason: String)
    }

    /// What the caller must do after an event.
    public enum Action: Sendable, Equatable {
        case none
        /// Stop accepting submissions and merge these nodes' sets.
        case close(submitted: [String])
        /// The round cannot complete.
        case fail(reason: String)
    }

    public let expectedNodes: Set<String>
    public let quorum: Int
    public let deadline: Date
    public private(set) var state = State.open
    public private(set) var submitted: Set<String> = []
    /// Nodes that said they will not submit (their privacy gate refused the set).
    public private(set) var declined: Set<String> = []

    public init(expectedNodes: Set<String>, quorum: Int, deadline: Date) {
        precondition(quorum >= 1 && quorum <= max(expectedNodes.count, 1), "quorum must be in 1...expected nodes")
        self.expectedNodes = expectedNodes
        self.quorum = quorum
        self.deadline = deadline
    }

    /// A node's submission was durably stored.
    public mutating func submissionStored(from node: String, now: Date) -> Action {
        guard state == .open, expectedNodes.contains(node) else { return .none }
        submitted.insert(node)
        declined.remove(node)
        if submitted == expectedNodes { return close() }
        if submitted.union(declined) == expectedNodes { return expire() }
        return tick(now: now)
    }

    /// A node declined the round: nothing more is coming from it. Once every expected node has submitted or
    /// declined, waiting longer cannot help: the round closes with the quorum or fails without it.
    public mutating func declined(by node: String, now: Date) -> Action {
        guard state == .open, expectedNodes.contains(node), !submitted.contains(node) else { return .none }
        declined.insert(node)
        if submitted.union(declined) == expectedNodes { return expire() }
        return tick(now: now)
    }

    /// Time passed; closes or fails the round at the deadline.
    public mutating func tick(now: Date) -> Action {
        guard state == .open, now >= deadline else { return .none }
        return expire()
    }

    private mutating func expire() -> Action {
        if submitted.count >= quorum { return close() }
        let declinedNote = declined.isEmpty ? "" : ", \(declined.count) declined"
        let reason = submitted.union(declined) == expectedNodes
            ? "every node submitted or declined: \(submitted.count) of \(expectedNodes.count) submissions\(declinedNote) (quorum \(quorum))"
            : "deadline passed with \(submitted.count) of \(expectedNodes.count) submissions\(declinedNote) (quorum \(quorum))"
        state = .failed(reason: reason)
        return .fail(reason: reason)
    }

    /// The operator (or the simulation, once every node process has ended) closes the round now: as if the deadline
    /// had passed.
    public mutating func closeNow() -> Action {
        guard state == .open else { return .none }
        return expire()
    }

    /// Accepts a submission only while open and from an expected node.
    public func accepts(_ node: String) -> Bool { state == .open && expectedNodes.contains(node) }

    private mutating func close() -> Action {
        state = .closed
        return .close(submitted: submitted.sorted())
    }
}
