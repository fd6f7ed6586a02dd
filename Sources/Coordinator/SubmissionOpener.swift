import Distill
import FederationProtocol
import Foundation
import GRPCCore

/// The one path from a node's sealed bytes to a set the merge can use, taken when a submission arrives and again
/// when the round is finalised, with the same checks and limits both times:
///
/// 1. the envelope (``EnvelopeVerifier/authenticate(_:currentRound:sender:)``): structure and limits, protocol
///    version, federation, sender, round, registered node, signature, decryption;
/// 2. the safetensors payload (`SyntheticSet.decode`): strict header, checked arithmetic, ranges that tile the data,
///    finite values, labels in range, bounded metadata (class counts, the signed privacy-audit summary);
/// 3. the round: dataset, image shape, class count, normalisation, at most `maxImagesPerClass` images per class and
///    the round's multi-formation factor.
///
/// A set that opens here can always be merged. Pure and `Sendable`: callers run it off the coordinator actor.
public struct SubmissionOpener: Sendable {
    let verifier: EnvelopeVerifier
    let roundID: UInt64
    let descriptor: DatasetDescriptor
    let maxImagesPerClass: Int
    /// The multi-formation factor every set of the round must declare.
    let formationFactor: Int

    public init(verifier: EnvelopeVerifier, roundID: UInt64, descriptor: DatasetDescriptor, maxImagesPerClass: Int,
                formationFactor: Int = 1) {
        self.verifier = verifier
        self.roundID = roundID
        self.descriptor = descriptor
        self.maxImagesPerClass = maxImagesPerClass
        self.formationFactor = formationFactor
    }

    /// An authenticated, decoded and validated submission.
    public struct Opened: Sendable {
        /// The authenticated envelope (header, nonce, payload).
        public var envelope: VerifiedEnvelope
        /// The node's set.
        public var set: SyntheticSet
    }

    /// Why a submission cannot be used, and the status to answer the peer with.
    public enum Failure: Error, CustomStringConvertible {
        /// The envelope failed a check (its own description says which).
        case envelope(EnvelopeError)
        /// The envelope is authentic but its set is malformed or does not belong to the round.
        case set(DatasetError)

        public var description: String {
            switch self {
            case let .envelope(error): error.description
            case let .set(error): "invalid synthetic set: \(error)"
            }
        }

        /// The gRPC status for the node.
        public var rpcError: RPCError {
            switch self {
            case let .envelope(error): error.rpcError
            case .set: RPCError(code: .invalidArgument, message: description)
            }
        }
    }

    /// Opens `bytes` sent (or stored) by `node`.
    public func open(_ bytes: [UInt8], from node: String) throws(Failure) -> Opened {
        let envelope: VerifiedEnvelope
        do { envelope = try verifier.authenticate(bytes, currentRound: roundID, sender: node) } catch { throw .envelope(error) }
        do {
            let set = try SyntheticSet.decode(envelope.payload, path: "submission from \(PeerText.escaped(node))")
            try set.check(belongsTo: descriptor, maxImagesPerClass: maxImagesPerClass, formationFactor: formationFactor)
            return Opened(envelope: envelope, set: set)
        } catch {
            throw .set(error)
        }
    }

    /// ``open(_:from:)`` on the global concurrent executor, away from the caller's actor (decrypting and decoding
    /// a large set takes a while, and the coordinator actor keeps serving joins and watches meanwhile).
    @concurrent
    public func openOffActor(_ bytes: [UInt8], from node: String) async throws(Failure) -> Opened {
        try open(bytes, from: node)
    }
}
