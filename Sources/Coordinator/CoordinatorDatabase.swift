import FederationProtocol
import Foundation
import GRDB
import Distill

/// The coordinator's durable state in one SQLite database (GRDB, WAL journal, `synchronous = FULL`):
/// node registrations, rounds, received envelopes (still sealed) and results.
///
/// A receipt is sent only after ``store(envelope:record:)`` returns, i.e. after the transaction that holds the
/// envelope has been committed and the WAL fsynced. A restarted coordinator opens the same file and resumes the round
/// with every receipted submission (``records(round:)``). Back it up while running with
/// `sqlite3 coordinator.sqlite ".backup copy.sqlite"` (see docs/operations.md).
///
/// Replays: a node has at most one stored envelope per round. Resubmitting the stored envelope (a lost receipt) gets
/// the original receipt; any other envelope from that node in that round is refused, before and after a restart.
public final class CoordinatorDatabase: Sendable {
    /// What is kept besides the envelope.
    public struct Record: Sendable, Codable, Equatable {
        public var nodeID: String
        public var roundID: UInt64
        public var digestHex: String
        public var bytes: Int
        public var storedAtUnixSeconds: Int64
        public var privacyAuditJSON: String

        public init(nodeID: String, roundID: UInt64, digestHex: String, bytes: Int, storedAtUnixSeconds: Int64,
                    privacyAuditJSON: String) {
            self.nodeID = nodeID
            self.roundID = roundID
            self.digestHex = digestHex
            self.bytes = bytes
            self.storedAtUnixSeconds = storedAtUnixSeconds
            self.privacyAuditJSON = privacyAuditJSON
        }
    }

    /// Where a round is in its life, as stored.
    public enum RoundState: String, Sendable, Equatable, CaseIterable {
        /// Accepting submissions.
        case open
        /// No longer accepting; the merge and evaluation run (again, after a restart).
        case closed
        /// The result is stored.
        case finished
        /// The round ended without a result; `failure` says why.
        case failed
    }

    /// A round as stored.
    public struct Round: Sendable, Equatable {
        public var id: UInt64
        public var state: RoundState
        public var openedAtUnixSeconds: Int64
        public var deadlineUnixSeconds: Int64
        public var resultJSON: String?
        public var failure: String?
        /// How many times finalisation (merge and evaluation) has started for this round.
        public var finalizationAttempts: Int
        /// When the result or the failure was stored.
        public var endedAtUnixSeconds: Int64?
        /// The round's configuration as the coordinator opened it (JSON).
        public var configurationJSON: String?

        /// Whether the round has a result or a failure.
        public var concluded: Bool { state == .finished || state == .failed }

        /// The SHA-256 of the round's global set as its result recorded it (nil: no result, or none recorded).
        public var globalSetSHA256: String? {
            guard let resultJSON, let result = try? JSONSerialization.jsonObject(with: Data(resultJSON.utf8)) as? [String: Any] else {
                return nil
            }
            return result["global_set_sha256"] as? String
        }
    }

    /// A node's part in one round, as stored (the node table and the round history read it).
    public struct NodeInRound: Sendable, Equatable {
        public enum State: String, Sendable, Equatable, CaseIterable {
            case joined, submitted, rejected, declined
        }

        public var nodeID: String
        public var state: State
        /// passed, refused, off or empty (unknown).
        public var gate: String
        /// Escaped and cut reason of a rejection or a decline.
        public var detail: String
        public var atUnixSeconds: Int64

        public init(nodeID: String, state: State, gate: String = "", detail: String = "", atUnixSeconds: Int64) {
            self.nodeID = nodeID
            self.state = state
            self.gate = gate
            self.detail = detail
            self.atUnixSeconds = atUnixSeconds
        }
    }

    /// The database file name inside the coordinator's state directory.
    public static let fileName = "coordinator.sqlite"

    public let path: String
    let pool: DatabasePool

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    public init(path: String) throws {
        self.path = path
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
        // Create the file 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database's mode.
        if !FileManager.default.fileExists(atPath: path) {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            if fd >= 0 { close(fd) }
        }
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // WAL (DatabasePool's default) with a full fsync at every commit: a committed submission survives a crash.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        configuration.busyMode = .timeout(10)
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreError.database(path: path, reason: "\(error)")
        }
        chmod(path, 0o600)
    }

    /// Opens the database of a state directory.
    public convenience init(stateDirectory: String) throws {
        try self.init(path: stateDirectory + "/" + Self.fileName)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "node") { table in
                table.primaryKey("id", .text)
                table.column("first_joined_at", .integer).notNull()
                table.column("last_seen_at", .integer).notNull()
            }
            try db.create(table: "round") { table in
                table.primaryKey("id", .integer)
                table.column("state", .text).notNull()
                table.column("opened_at", .integer).notNull()
                table.column("deadline_at", .integer).notNull()
                table.column("result_json", .text)
                table.column("failure", .text)
            }
            try db.create(table: "submission") { table in
                table.column("round_id", .integer).notNull()
                table.column("node_id", .text).notNull()
                table.column("digest_hex", .text).notNull()
                table.column("bytes", .integer).notNull()
                table.column("stored_at", .integer).notNull()
                table.column("privacy_audit_json", .text).notNull()
                table.column("envelope", .blob).notNull()
                table.primaryKey(["round_id", "node_id"])
            }
        }
        migrator.registerMigration("v2-finalization-attempts") { db in
            try db.alter(table: "round") { table in
                table.add(column: "finalization_attempts", .integer).notNull().defaults(to: 0)
            }
        }
        migrator.registerMigration("v3-round-history") { db in
            // A long-running coordinator keeps every round: when it ended, what it was asked to do, and each node's
            // part in it (joined, submitted, rejected, declined; its privacy gate).
            try db.alter(table: "round") { table in
                table.add(column: "ended_at", .integer)
                table.add(column: "configuration_json", .text)
            }
            try db.create(table: "round_node") { table in
                table.column("round_id", .integer).notNull()
                table.column("node_id", .text).notNull()
                table.column("state", .text).notNull()
                table.column("gate", .text).notNull().defaults(to: "")
                table.column("detail", .text).notNull().defaults(to: "")
                table.column("at", .integer).notNull()
                table.primaryKey(["round_id", "node_id"])
            }
        }
        return migrator
    }

    private func guarded<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as StoreError { throw error } catch {
            throw StoreError.database(path: path, reason: "\(error)")
        }
    }

    // MARK: Submissions

    /// Durably stores a submission; returns the stored record (the existing one when the same envelope is resubmitted).
    /// - Throws: `StoreError.conflictingSubmission` when the node already stored a different envelope this round.
    public func store(envelope: [UInt8], record: Record) throws -> Record {
        try guarded {
            try pool.write { db in
                if let existing = try Self.record(db, round: record.roundID, node: record.nodeID) {
                    guard existing.digestHex == record.digestHex else {
                        throw StoreError.conflictingSubmission(node: record.nodeID, round: record.roundID)
                    }
                    return existing
                }
                try db.execute(sql: """
                    INSERT INTO submission (round_id, node_id, digest_hex, bytes, stored_at, privacy_audit_json, envelope)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [Int64(record.roundID), record.nodeID, record.digestHex, record.bytes,
                                     record.storedAtUnixSeconds, record.privacyAuditJSON, Data(envelope)])
                return record
            }
        }
    }

    private static func record(_ db: Database, round: UInt64, node: String) throws -> Record? {
        try Row.fetchOne(db, sql: """
            SELECT node_id, round_id, digest_hex, bytes, stored_at, privacy_audit_json FROM submission
            WHERE round_id = ? AND node_id = ?
            """, arguments: [Int64(round), node]).map(Self.record(from:))
    }

    private static func record(from row: Row) -> Record {
        Record(nodeID: row["node_id"], roundID: UInt64(row["round_id"] as Int64), digestHex: row["digest_hex"],
               bytes: row["bytes"], storedAtUnixSeconds: row["stored_at"], privacyAuditJSON: row["privacy_audit_json"])
    }

    /// The stored record of a node in a round.
    public func record(round: UInt64, node: String) throws -> Record? {
        try guarded { try pool.read { db in try Self.record(db, round: round, node: node) } }
    }

    /// All submissions of a round, by node id.
    public func records(round: UInt64) throws -> [Record] {
        try guarded {
            try pool.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT node_id, round_id, digest_hex, bytes, stored_at, privacy_audit_json FROM submission
                    WHERE round_id = ? ORDER BY node_id
                    """, arguments: [Int64(round)]).map(Self.record(from:))
            }
        }
    }

    /// The sealed bytes of a stored submission.
    public func envelope(round: UInt64, node: String) throws -> [UInt8] {
        try guarded {
            guard let data = try pool.read({ db in
                try Data.fetchOne(db, sql: "SELECT envelope FROM submission WHERE round_id = ? AND node_id = ?",
                                  arguments: [Int64(round), node])
            }) else { throw StoreError.missing(what: "envelope of node \(node) in round \(round)") }
            return [UInt8](data)
        }
    }

    /// Number of stored submissions over all rounds.
    /// The number of stored submissions, of one round or of all.
    public func submissionCount(round: UInt64? = nil) throws -> Int {
        try guarded {
            try pool.read { db in
                if let round {
                    return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM submission WHERE round_id = ?", arguments: [Int64(round)]) ?? 0
                }
                return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM submission") ?? 0
            }
        }
    }

    // MARK: Nodes

    /// Records that a node joined (first time) or was seen again.
    public func nodeSeen(_ node: String, atUnixSeconds now: Int64) throws {
        try guarded {
            try pool.write { db in
                try db.execute(sql: """
                    INSERT INTO node (id, first_joined_at, last_seen_at) VALUES (?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET last_seen_at = excluded.last_seen_at
                    """, arguments: [node, now, now])
            }
        }
    }

    /// Ids of every node that ever joined.
    public func nodes() throws -> [String] {
        try guarded { try pool.read { db in try String.fetchAll(db, sql: "SELECT id FROM node ORDER BY id") } }
    }

    public func nodeCount() throws -> Int {
        try guarded { try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM node") ?? 0 } }
    }

    // MARK: Rounds

    /// The stored round, or a new open round with the given deadline. A restarted coordinator keeps the round's
    /// original deadline.
    public func openRound(id: UInt64, now: Int64, deadline: Int64) throws -> Round {
        try guarded {
            try pool.write { db in
                try db.execute(sql: """
                    INSERT INTO round (id, state, opened_at, deadline_at) VALUES (?, 'open', ?, ?)
                    ON CONFLICT(id) DO NOTHING
                    """, arguments: [Int64(id), now, deadline])
                return try Self.round(db, id: id)!
            }
        }
    }

    private static func round(_ db: Database, id: UInt64) throws -> Round? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM round WHERE id = ?", arguments: [Int64(id)]) else { return nil }
        let text: String = row["state"]
        guard let state = RoundState(rawValue: text) else {
            throw StoreError.database(path: "round \(id)", reason: "unknown stored round state \(PeerText.quoted(text))")
        }
        return Round(id: UInt64(row["id"] as Int64), state: state, openedAtUnixSeconds: row["opened_at"],
                     deadlineUnixSeconds: row["deadline_at"], resultJSON: row["result_json"], failure: row["failure"],
                     finalizationAttempts: row["finalization_attempts"], endedAtUnixSeconds: row["ended_at"],
                     configurationJSON: row["configuration_json"])
    }

    /// The stored rounds, newest first, at most `limit`.
    public func rounds(limit: Int = 100) throws -> [Round] {
        try guarded {
            try pool.read { db in
                try Int64.fetchAll(db, sql: "SELECT id FROM round ORDER BY id DESC LIMIT ?", arguments: [limit])
                    .compactMap { try Self.round(db, id: UInt64($0)) }
            }
        }
    }

    /// The stored round with the highest id, if any.
    public func latestRound() throws -> Round? { try rounds(limit: 1).first }

    /// Records the configuration a round was opened with (kept once written).
    public func setRoundConfiguration(id: UInt64, json: String) throws {
        try guarded {
            try pool.write { db in
                try db.execute(sql: "UPDATE round SET configuration_json = COALESCE(configuration_json, ?) WHERE id = ?",
                               arguments: [json, Int64(id)])
            }
        }
    }

    // MARK: Nodes in rounds

    /// Records where a node is in a round. A later state replaces an earlier one, except that a stored submission
    /// is never overwritten by a join (a node that rejoins after submitting stays submitted); the gate is kept when
    /// the new record has none.
    public func setNode(_ node: NodeInRound, round: UInt64) throws {
        try guarded {
            try pool.write { db in
                try db.execute(sql: """
                    INSERT INTO round_node (round_id, node_id, state, gate, detail, at) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT(round_id, node_id) DO UPDATE SET
                        state = CASE WHEN round_node.state = 'submitted' AND excluded.state = 'joined' THEN round_node.state
                                     ELSE excluded.state END,
                        gate = CASE WHEN excluded.gate = '' THEN round_node.gate ELSE excluded.gate END,
                        detail = CASE WHEN round_node.state = 'submitted' AND excluded.state = 'joined' THEN round_node.detail
                                      ELSE excluded.detail END,
                        at = excluded.at
                    """, arguments: [Int64(round), node.nodeID, node.state.rawValue, node.gate, node.detail, node.atUnixSeconds])
            }
        }
    }

    /// Every node's part in a round, by node id.
    public func nodes(inRound round: UInt64) throws -> [String: NodeInRound] {
        try guarded {
            try pool.read { db in
                var result: [String: NodeInRound] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT * FROM round_node WHERE round_id = ?", arguments: [Int64(round)]) {
                    let text: String = row["state"]
                    guard let state = NodeInRound.State(rawValue: text) else { continue }
                    let node: String = row["node_id"]
                    result[node] = NodeInRound(nodeID: node, state: state, gate: row["gate"], detail: row["detail"], atUnixSeconds: row["at"])
                }
                return result
            }
        }
    }

    /// When each node that ever joined was last seen.
    public func nodesLastSeen() throws -> [String: Int64] {
        try guarded {
            try pool.read { db in
                var result: [String: Int64] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT id, last_seen_at FROM node") { result[row["id"]] = row["last_seen_at"] }
                return result
            }
        }
    }

    /// A stored round.
    public func round(id: UInt64) throws -> Round? {
        try guarded { try pool.read { db in try Self.round(db, id: id) } }
    }

    /// Number of rounds stored.
    public func roundCount() throws -> Int {
        try guarded { try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM round") ?? 0 } }
    }

    /// Moves a round to `state`, with its result or failure.
    /// A round that concludes (finished, failed) records `now` as its end, once.
    public func setRoundState(id: UInt64, state: RoundState, resultJSON: String? = nil, failure: String? = nil,
                              now: Int64 = Int64(Date().timeIntervalSince1970)) throws {
        try guarded {
            try pool.write { db in
                try db.execute(sql: """
                    UPDATE round SET state = ?, result_json = COALESCE(?, result_json), failure = ?,
                        ended_at = CASE WHEN ? THEN COALESCE(ended_at, ?) ELSE NULL END WHERE id = ?
                    """, arguments: [state.rawValue, resultJSON, failure, state == .finished || state == .failed,
                                     now, Int64(id)])
            }
        }
    }

    /// Takes back one start of the round's finalisation: it was interrupted by a shutdown, not ended by a crash.
    public func abandonFinalization(round id: UInt64) throws {
        try guarded {
            try pool.write { db in
                try db.execute(sql: """
                    UPDATE round SET finalization_attempts = MAX(finalization_attempts - 1, 0) WHERE id = ?
                    """, arguments: [Int64(id)])
            }
        }
    }

    /// Counts one more start of the round's finalisation, durably, before it runs; returns the count including this
    /// one. A finalisation that kills the process is counted, so a restart loop can be broken.
    public func beginFinalization(round id: UInt64) throws -> Int {
        try guarded {
            try pool.write { db in
                try db.execute(sql: "UPDATE round SET finalization_attempts = finalization_attempts + 1 WHERE id = ?",
                               arguments: [Int64(id)])
                return try Int.fetchOne(db, sql: "SELECT finalization_attempts FROM round WHERE id = ?", arguments: [Int64(id)]) ?? 0
            }
        }
    }
}

/// Storage failures.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    case conflictingSubmission(node: String, round: UInt64)
    case missing(what: String)
    case database(path: String, reason: String)

    public var description: String {
        switch self {
        case let .conflictingSubmission(node, round): "node \(node) already submitted a different set in round \(round)"
        case let .missing(what): "\(what) is missing"
        case let .database(path, reason): "coordinator database \(path): \(reason)"
        }
    }
}
