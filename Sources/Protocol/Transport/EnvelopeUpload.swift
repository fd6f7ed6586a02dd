import Crypto
import Foundation
import GRPCCore
import Logging

/// Public names for the generated wire messages callers use most.
public typealias SubmitChunk = Feddistill_V1_SubmitChunk
/// The first `SubmitChunk` of an upload.
public typealias SubmitMetadata = Feddistill_V1_SubmitMetadata
/// The answer to `Submit`.
public typealias Receipt = Feddistill_V1_Receipt

/// Streaming one envelope through `Submit` as a metadata chunk followed by data chunks.
public enum EnvelopeChunking {
    /// Allowed chunk sizes: large enough to amortise framing, small enough to stay far below message limits.
    public static let chunkBytesRange = (64 << 10)...(1 << 20)
    /// The default chunk size.
    public static let defaultChunkBytes = 1 << 20

    /// Writes `metadata` and then `envelope` in chunks of `chunkBytes` to a `Submit` request stream.
    /// - Parameters:
    ///   - envelope: The serialized sealed envelope; `metadata.totalSize` is set to its length.
    ///   - metadata: Round id, node id and optional audit summary.
    ///   - chunkBytes: Chunk size, clamped to `chunkBytesRange`.
    ///   - writer: The request stream.
    /// - Throws: If the stream cannot be written.
    public static func write(
        _ envelope: [UInt8], metadata: SubmitMetadata, chunkBytes: Int = defaultChunkBytes,
        to writer: RPCWriter<SubmitChunk>
    ) async throws {
        var first = metadata
        first.totalSize = UInt64(envelope.count)
        var head = SubmitChunk()
        head.metadata = first
        try await writer.write(head)
        let size = min(max(chunkBytes, chunkBytesRange.lowerBound), chunkBytesRange.upperBound)
        var start = 0
        while start < envelope.count {
            let end = min(start + size, envelope.count)
            var chunk = SubmitChunk()
            chunk.data = Data(envelope[start..<end])
            try await writer.write(chunk)
            start = end
        }
    }
}

/// One envelope received through `Submit`, before the coordinator verifies or stores it.
public struct ReceivedSubmission: Sendable {
    /// The first chunk's metadata.
    public let metadata: SubmitMetadata
    /// The node id proven by the client certificate (equal to `metadata.nodeID`).
    public let nodeID: String
    /// The whole envelope.
    public let envelope: [UInt8]
    /// SHA-256 of `envelope`, for the receipt.
    public let digest: [UInt8]

    /// The receipt to return once the envelope is durably stored.
    /// - Parameter storedAtUnixSeconds: When it was stored.
    /// - Returns: The receipt.
    public func receipt(storedAtUnixSeconds: Int64) -> Receipt {
        var receipt = Receipt()
        receipt.envelopeDigest = Data(digest)
        receipt.storedAtUnixSeconds = storedAtUnixSeconds
        return receipt
    }
}

/// Server side of `Submit`: reassembles the chunks of one envelope and checks who sent them.
public enum SubmissionReceiver {
    /// Reads a `Submit` request stream to its end.
    ///
    /// The first chunk must carry metadata whose node id equals the peer certificate's node id; later chunks
    /// carry data, and the stream must end with exactly `totalSize` bytes.
    /// - Parameters:
    ///   - chunks: The request stream.
    ///   - context: The handler's server context (for the peer certificate).
    ///   - maxEnvelopeBytes: Largest `totalSize` accepted.
    ///   - logger: Receives one line per submission (node, round, size or the refusal reason; never bytes).
    ///   - reserve: Called with the announced size once the metadata chunk is checked and before any buffer is
    ///     allocated; throw to refuse the upload (e.g. the receiver is at its memory budget).
    /// - Returns: The envelope with its digest.
    /// - Throws: `RPCError` with `.invalidArgument` (protocol violations, truncated stream),
    ///   `.resourceExhausted` (too large), `.permissionDenied` (node mismatch) or `.unauthenticated`.
    public static func receive(
        _ chunks: RPCAsyncSequence<SubmitChunk, any Error>, context: ServerContext,
        maxEnvelopeBytes: Int = EnvelopeLimits.default.maxEnvelopeBytes, logger: Logger = .current,
        reserve: (UInt64) async throws -> Void = { _ in }
    ) async throws -> ReceivedSubmission {
        do {
            let submission = try await assemble(chunks, context: context, maxEnvelopeBytes: maxEnvelopeBytes, reserve: reserve)
            logger.debug("submission received", metadata: [
                "node.id": "\(PeerString.quoted(submission.nodeID))", "round.id": "\(submission.metadata.roundID)",
                "envelope.bytes": "\(submission.envelope.count)",
            ])
            return submission
        } catch let error as RPCError {
            logger.info("submission refused", metadata: [
                "peer": "\(context.remotePeer)", "rpc.code": "\(error.code)", "reason": "\(error.message)",
            ])
            throw error
        }
    }

    /// Receives one envelope, hands it to `store`, and only when `store` returns (the envelope is durable)
    /// builds the receipt. If `store` throws, no receipt is sent and the error reaches the client.
    /// - Parameters:
    ///   - chunks: The request stream.
    ///   - context: The handler's server context.
    ///   - maxEnvelopeBytes: Largest `totalSize` accepted.
    ///   - logger: See `receive`.
    ///   - store: Persists the submission durably (verify it first if you like) and returns the storage time in
    ///     unix seconds.
    /// - Returns: The receipt for the handler to return.
    /// - Throws: The errors of `receive`, or whatever `store` throws.
    public static func receiveAndStore(
        _ chunks: RPCAsyncSequence<SubmitChunk, any Error>, context: ServerContext,
        maxEnvelopeBytes: Int = EnvelopeLimits.default.maxEnvelopeBytes, logger: Logger = .current,
        store: (ReceivedSubmission) async throws -> Int64
    ) async throws -> Receipt {
        let submission = try await receive(chunks, context: context, maxEnvelopeBytes: maxEnvelopeBytes, logger: logger)
        let storedAt = try await store(submission)
        return submission.receipt(storedAtUnixSeconds: storedAt)
    }

    private static func assemble(
        _ chunks: RPCAsyncSequence<SubmitChunk, any Error>, context: ServerContext, maxEnvelopeBytes: Int,
        reserve: (UInt64) async throws -> Void
    ) async throws -> ReceivedSubmission {
        var iterator = chunks.makeAsyncIterator()
        guard let first = try await iterator.next() else {
            throw RPCError(code: .invalidArgument, message: "submit stream ended before its metadata chunk")
        }
        guard case .metadata(let metadata) = first.part else {
            throw RPCError(code: .invalidArgument, message: "the first submit chunk must carry metadata")
        }
        let nodeID = try PeerIdentity.requireNode(metadata.nodeID, context: context)
        guard metadata.totalSize > 0 else {
            throw RPCError(code: .invalidArgument, message: "submit metadata total size is zero")
        }
        guard metadata.totalSize <= UInt64(clamping: maxEnvelopeBytes) else {
            throw RPCError(code: .resourceExhausted,
                           message: "envelope of \(metadata.totalSize) bytes is above the limit of \(maxEnvelopeBytes)")
        }
        try await reserve(metadata.totalSize)
        let total = Int(metadata.totalSize)
        var envelope: [UInt8] = []
        envelope.reserveCapacity(total)
        while let chunk = try await iterator.next() {
            guard case .data(let data) = chunk.part else {
                throw RPCError(code: .invalidArgument, message: "only the first submit chunk may carry metadata")
            }
            guard data.count <= EnvelopeChunking.chunkBytesRange.upperBound else {
                throw RPCError(code: .invalidArgument,
                               message: "submit chunk of \(data.count) bytes is above the limit of \(EnvelopeChunking.chunkBytesRange.upperBound)")
            }
            guard data.count <= total - envelope.count else {
                throw RPCError(code: .invalidArgument,
                               message: "submit stream carries more than the announced \(total) bytes")
            }
            envelope.append(contentsOf: data)
        }
        guard envelope.count == total else {
            throw RPCError(code: .invalidArgument,
                           message: "submit stream ended after \(envelope.count) of \(total) bytes (truncated)")
        }
        let digest = Array(SHA256.hash(data: envelope))
        return ReceivedSubmission(metadata: metadata, nodeID: nodeID, envelope: envelope, digest: digest)
    }
}

extension Feddistill_V1_Federation.Client {
    /// Uploads one serialized envelope and waits for the coordinator's receipt.
    /// - Parameters:
    ///   - envelope: The serialized sealed envelope.
    ///   - metadata: Round id, node id and optional audit summary (`totalSize` is filled in).
    ///   - chunkBytes: Chunk size, clamped to `EnvelopeChunking.chunkBytesRange`.
    /// - Returns: The receipt, sent only after the envelope is durably stored.
    /// - Throws: `RPCError` from the coordinator or the transport.
    public func submitEnvelope(
        _ envelope: [UInt8], metadata: SubmitMetadata, chunkBytes: Int = EnvelopeChunking.defaultChunkBytes
    ) async throws -> Receipt {
        try await submit(requestProducer: { writer in
            try await EnvelopeChunking.write(envelope, metadata: metadata, chunkBytes: chunkBytes, to: writer)
        })
    }
}
