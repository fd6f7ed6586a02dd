import Foundation
import GRDB
import Testing
@testable import Coordinator

@Suite("Coordinator database")
struct CoordinatorDatabaseTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-db-\(UUID().uuidString)").path

    func record(_ node: String, digest: String, round: UInt64 = 1) -> CoordinatorDatabase.Record {
        .init(nodeID: node, roundID: round, digestHex: digest, bytes: 3, storedAtUnixSeconds: 42, privacyAuditJSON: "{}")
    }

    /// The round history: a node's part in a round (a join never demotes a stored submission, an empty gate keeps the
    /// known one), the end time written once when a round concludes, the configuration kept once written.
    @Test func roundHistoryKeepsNodesEndsAndConfigurations() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = try CoordinatorDatabase(stateDirectory: directory)
        _ = try database.openRound(id: 1, now: 100, deadline: 200)
        _ = try database.openRound(id: 2, now: 300, deadline: 400)
        try database.setRoundConfiguration(id: 1, json: "{\"quorum\":1}")
        try database.setRoundConfiguration(id: 1, json: "{\"quorum\":9}")
        try database.setNode(.init(nodeID: "a", state: .submitted, gate: "passed", atUnixSeconds: 110), round: 1)
        try database.setNode(.init(nodeID: "a", state: .joined, atUnixSeconds: 120), round: 1)
        try database.setNode(.init(nodeID: "b", state: .declined, gate: "refused", detail: "gate", atUnixSeconds: 130), round: 1)
        let nodes = try database.nodes(inRound: 1)
        #expect(nodes["a"]?.state == .submitted && nodes["a"]?.gate == "passed" && nodes["a"]?.atUnixSeconds == 120)
        #expect(nodes["b"] == .init(nodeID: "b", state: .declined, gate: "refused", detail: "gate", atUnixSeconds: 130))
        #expect(try database.nodes(inRound: 2).isEmpty)
        try database.setRoundState(id: 1, state: .closed, now: 140)
        #expect(try database.round(id: 1)?.endedAtUnixSeconds == nil, "closed is not the end")
        try database.setRoundState(id: 1, state: .finished, resultJSON: "{}", now: 150)
        try database.setRoundState(id: 1, state: .finished, now: 160)
        let first = try database.round(id: 1)
        #expect(first?.endedAtUnixSeconds == 150 && first?.configurationJSON == "{\"quorum\":1}" && first?.concluded == true)
        #expect(try database.rounds().map(\.id) == [2, 1] && database.latestRound()?.id == 2)
    }

    @Test func submissionsSurviveAReopenInWALMode() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let database = try CoordinatorDatabase(stateDirectory: directory)
            _ = try database.store(envelope: [1, 2, 3], record: record("a", digest: "aa"))
            _ = try database.store(envelope: [4], record: record("b", digest: "bb", round: 2))
        }
        // A new connection over the same file (a restarted coordinator) sees the committed submissions.
        let reopened = try CoordinatorDatabase(stateDirectory: directory)
        #expect(try reopened.records(round: 1) == [record("a", digest: "aa")])
        #expect(try reopened.envelope(round: 1, node: "a") == [1, 2, 3])
        #expect(try reopened.records(round: 2).map(\.nodeID) == ["b"])
        #expect(try reopened.submissionCount() == 2)
        #expect(try reopened.submissionCount(round: 1) == 1 && reopened.submissionCount(round: 3) == 0)
        let mode = try reopened.pool.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        let synchronous = try reopened.pool.read { try Int.fetchOne($0, sql: "PRAGMA synchronous") }
        #expect(synchronous == 2, "FULL: every commit is fsynced before a receipt goes out")
        let attributes = try FileManager.default.attributesOfItem(atPath: reopened.path)
        #expect((attributes[.posixPermissions] as? Int).map { $0 & 0o077 } == 0, "the database is private to its owner")
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: reopened.path + suffix) {
            let mode = try FileManager.default.attributesOfItem(atPath: reopened.path + suffix)[.posixPermissions] as? Int
            #expect(mode.map { $0 & 0o077 } == 0, "\(suffix) is private too")
        }
        #expect(FileManager.default.fileExists(atPath: reopened.path + "-wal"))
    }

    @Test func sameEnvelopeIsIdempotentAndADifferentOneConflicts() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = try CoordinatorDatabase(stateDirectory: directory)
        let first = try database.store(envelope: [1], record: record("a", digest: "aa"))
        var later = record("a", digest: "aa")
        later.storedAtUnixSeconds = 99
        #expect(try database.store(envelope: [1], record: later) == first, "resubmission returns the original receipt time")
        #expect(throws: StoreError.conflictingSubmission(node: "a", round: 1)) {
            try database.store(envelope: [2], record: record("a", digest: "bb"))
        }
        #expect(try database.records(round: 1).count == 1)
        #expect(try database.envelope(round: 1, node: "a") == [1], "the stored envelope is untouched")
        #expect(throws: StoreError.self) { try database.envelope(round: 1, node: "nobody") }
    }

    @Test func aRoundKeepsItsDeadlineAndStateAcrossReopens() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let database = try CoordinatorDatabase(stateDirectory: directory)
            let round = try database.openRound(id: 7, now: 100, deadline: 160)
            #expect(round.state == .open && round.deadlineUnixSeconds == 160)
            try database.nodeSeen("a", atUnixSeconds: 101)
            try database.nodeSeen("a", atUnixSeconds: 105)
            try database.setRoundState(id: 7, state: .closed)
        }
        let reopened = try CoordinatorDatabase(stateDirectory: directory)
        let round = try reopened.openRound(id: 7, now: 500, deadline: 900)
        #expect(round.deadlineUnixSeconds == 160 && round.openedAtUnixSeconds == 100, "a restart keeps the original deadline")
        #expect(round.state == .closed)
        #expect(try reopened.nodes() == ["a"] && reopened.nodeCount() == 1)
        try reopened.setRoundState(id: 7, state: .finished, resultJSON: "{\"ok\":1}")
        #expect(try reopened.round(id: 7)?.resultJSON == "{\"ok\":1}")
        #expect(try reopened.roundCount() == 1)
    }

    @Test func aCorruptDatabaseIsAClearErrorAndIsLeftAlone() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/" + CoordinatorDatabase.fileName
        let garbage = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        FileManager.default.createFile(atPath: path, contents: garbage)
        do {
            _ = try CoordinatorDatabase(path: path)
            Issue.record("a corrupt database opened")
        } catch let error as StoreError {
            #expect(error.description.contains(path))
        }
        #expect(FileManager.default.contents(atPath: path) == garbage, "nothing was overwritten")
    }
}
