import Foundation
import Logging

/// Received envelopes, still encrypted, stored durably on disk: a receipt is sent only after `store` returns.
///
/// Layout: `DIR/round-ID/NODE.envelope` (the sealed bytes) and `NODE.json` (digest, size, time, audit summary).
/// Each file is written to a temporary name, flushed with `fsync`, renamed, and the directory is synced, so a crash
/// leaves either the whole submission or nothing. A restarted coordinator reloads every stored submission.
public struct SubmissionStore: Sendable {
    /// What is kept besides the envelope.
    public struct Record: Sendable, Codable, Equatable {
        public var nodeID: String
        public var roundID: UInt64
        public var digestHex: String
        public var bytes: Int
        public var storedAtUnixSeconds: Int64
        public var privacyAuditJSON: String
    }

    public let directory: String

    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
    }

    private func roundDirectory(_ round: UInt64) -> String { directory + "/round-\(round)" }

    /// Durably stores a submission; returns the stored record (the existing one when the same envelope is resubmitted).
    /// - Throws: `StoreError.conflictingSubmission` when the node already stored a different envelope this round.
    public func store(envelope: [UInt8], record: Record) throws -> Record {
        if let existing = try self.record(round: record.roundID, node: record.nodeID) {
            guard existing.digestHex == record.digestHex else {
                throw StoreError.conflictingSubmission(node: record.nodeID, round: record.roundID)
            }
            return existing
        }
        let dir = roundDirectory(record.roundID)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try Self.durablyWrite(envelope, to: dir + "/\(record.nodeID).envelope")
        try Self.durablyWrite(Array(try JSONEncoder().encode(record)), to: dir + "/\(record.nodeID).json")
        try Self.syncDirectory(dir)
        return record
    }

    /// The stored record of a node in a round, if complete.
    public func record(round: UInt64, node: String) throws -> Record? {
        let path = roundDirectory(round) + "/\(node).json"
        guard let data = FileManager.default.contents(atPath: path),
              FileManager.default.fileExists(atPath: roundDirectory(round) + "/\(node).envelope") else { return nil }
        return try JSONDecoder().decode(Record.self, from: data)
    }

    /// All complete submissions of a round.
    public func records(round: UInt64) throws -> [Record] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: roundDirectory(round))) ?? []
        return try names.filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted().compactMap {
            try record(round: round, node: String($0.dropLast(5)))
        }
    }

    /// The sealed bytes of a stored submission.
    public func envelope(round: UInt64, node: String) throws -> [UInt8] {
        let path = roundDirectory(round) + "/\(node).envelope"
        guard let data = FileManager.default.contents(atPath: path) else { throw StoreError.missing(path: path) }
        return [UInt8](data)
    }

    /// Writes `bytes` to a temporary file, fsyncs it and renames it into place.
    static func durablyWrite(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw StoreError.io(path: temporary, errno: errno) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            guard written > 0 else {
                close(fd)
                throw StoreError.io(path: temporary, errno: errno)
            }
            offset += written
        }
        guard fsync(fd) == 0 else {
            close(fd)
            throw StoreError.io(path: temporary, errno: errno)
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw StoreError.io(path: path, errno: errno) }
    }

    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw StoreError.io(path: path, errno: errno) }
        defer { close(fd) }
        _ = fsync(fd)
    }
}

/// Storage failures.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    case conflictingSubmission(node: String, round: UInt64)
    case missing(path: String)
    case io(path: String, errno: Int32)

    public var description: String {
        switch self {
        case let .conflictingSubmission(node, round): "node \(node) already submitted a different set in round \(round)"
        case let .missing(path): "\(path) is missing"
        case let .io(path, code): "\(path): \(String(cString: strerror(code)))"
        }
    }
}
