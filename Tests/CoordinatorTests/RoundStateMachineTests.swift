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

@Suite("Submission store")
struct SubmissionStoreTests {
    func temporary() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-store-\(UUID().uuidString)").path
    }

    func record(_ node: String, digest: String) -> SubmissionStore.Record {
        .init(nodeID: node, roundID: 1, digestHex: digest, bytes: 3, storedAtUnixSeconds: 42, privacyAuditJSON: "{}")
    }

    @Test func storesDurablyAndSurvivesARestart() throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SubmissionStore(directory: directory)
        _ = try store.store(envelope: [1, 2, 3], record: record("a", digest: "aa"))
        // A new store over the same directory (a restarted coordinator) sees the submission.
        let reopened = try SubmissionStore(directory: directory)
        #expect(try reopened.records(round: 1) == [record("a", digest: "aa")])
        #expect(try reopened.envelope(round: 1, node: "a") == [1, 2, 3])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory + "/round-1").filter { $0.hasSuffix(".partial") }
        #expect(leftovers.isEmpty)
    }

    @Test func sameEnvelopeIsIdempotentAndADifferentOneConflicts() throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SubmissionStore(directory: directory)
        let first = try store.store(envelope: [1], record: record("a", digest: "aa"))
        var later = record("a", digest: "aa")
        later.storedAtUnixSeconds = 99
        #expect(try store.store(envelope: [1], record: later) == first, "resubmission returns the original receipt time")
        #expect(throws: StoreError.conflictingSubmission(node: "a", round: 1)) {
            try store.store(envelope: [2], record: record("a", digest: "bb"))
        }
        #expect(try store.records(round: 1).count == 1)
    }

    @Test func aHalfWrittenSubmissionIsNotVisible() throws {
        let directory = temporary()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SubmissionStore(directory: directory)
        try FileManager.default.createDirectory(atPath: directory + "/round-1", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: directory + "/round-1/b.envelope.partial", contents: Data([1, 2]))
        FileManager.default.createFile(atPath: directory + "/round-1/c.json", contents: Data("{}".utf8))  // envelope missing
        #expect(try store.records(round: 1).isEmpty)
    }
}
