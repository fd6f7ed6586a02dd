import Foundation
import Testing
@testable import Coordinator

@Suite("Round state machine")
struct RoundStateMachineTests {
    let start = Date(timeIntervalSince1970: 1_000_000)

    @Test func closesWhenEveryExpectedNodeSubmitted() {
        var machine = RoundStateMachine(expectedNodes: ["a", "b"], quorum: 1, deadline: start.addingTimeInterval(60))
        #expect(machine.submissionStored(from: "a", now: start) == .none)
        #expect(machine.submissionStored(from: "x", now: start) == .none, "unknown nodes are ignored")
        #expect(machine.submissionStored(from: "b", now: start) == .close(submitted: ["a", "b"]))
        #expect(machine.state == .closed)
        #expect(!machine.accepts("a"))
    }

    /// A node whose privacy gate refused its set declines: once every node has submitted or declined, the round closes
    /// with the quorum at once, or fails without it, instead of waiting for the deadline.
    @Test func declinesEndTheWaitForThoseNodes() {
        var machine = RoundStateMachine(expectedNodes: ["a", "b", "c"], quorum: 2, deadline: start.addingTimeInterval(60))
        #expect(machine.submissionStored(from: "a", now: start) == .none)
        #expect(machine.declined(by: "b", now: start) == .none)
        #expect(machine.declined(by: "a", now: start) == .none, "a stored set cannot be declined")
        #expect(machine.submissionStored(from: "c", now: start) == .close(submitted: ["a", "c"]))

        var short = RoundStateMachine(expectedNodes: ["a", "b"], quorum: 2, deadline: start.addingTimeInterval(60))
        _ = short.submissionStored(from: "a", now: start)
        guard case let .fail(reason) = short.declined(by: "b", now: start) else {
            Issue.record("a round that cannot reach its quorum fails at once")
            return
        }
        #expect(reason.contains("every node submitted or declined") && reason.contains("1 declined"))
    }

    @Test func closesAtTheDeadlineWithQuorum() {
        var machine = RoundStateMachine(expectedNodes: ["a", "b", "c"], quorum: 2, deadline: start.addingTimeInterval(60))
        _ = machine.submissionStored(from: "a", now: start)
        _ = machine.submissionStored(from: "c", now: start.addingTimeInterval(10))
        #expect(machine.tick(now: start.addingTimeInterval(59)) == .none)
        #expect(machine.tick(now: start.addingTimeInterval(60)) == .close(submitted: ["a", "c"]))
    }

    @Test func failsAtTheDeadlineWithoutQuorum() {
        var machine = RoundStateMachine(expectedNodes: ["a", "b", "c"], quorum: 2, deadline: start.addingTimeInterval(60))
        _ = machine.submissionStored(from: "a", now: start)
        guard case .fail = machine.tick(now: start.addingTimeInterval(61)) else {
            Issue.record("expected the round to fail")
            return
        }
        #expect(machine.submissionStored(from: "b", now: start.addingTimeInterval(62)) == .none, "a failed round stays failed")
    }

    @Test func closeNowActsAsTheDeadline() {
        var machine = RoundStateMachine(expectedNodes: ["a", "b", "c"], quorum: 1, deadline: start.addingTimeInterval(600))
        _ = machine.submissionStored(from: "b", now: start)
        #expect(machine.closeNow() == .close(submitted: ["b"]))
        #expect(machine.closeNow() == .none)
        var empty = RoundStateMachine(expectedNodes: ["a"], quorum: 1, deadline: start.addingTimeInterval(600))
        guard case .fail = empty.closeNow() else {
            Issue.record("closing without quorum fails the round")
            return
        }
    }

    @Test func resubmissionDoesNotCountTwice() {
        var machine = RoundStateMachine(expectedNodes: ["a", "b"], quorum: 2, deadline: start.addingTimeInterval(60))
        _ = machine.submissionStored(from: "a", now: start)
        _ = machine.submissionStored(from: "a", now: start)
        #expect(machine.submitted == ["a"])
        guard case .fail = machine.tick(now: start.addingTimeInterval(60)) else {
            Issue.record("one distinct submission is below quorum 2")
            return
        }
    }
}
