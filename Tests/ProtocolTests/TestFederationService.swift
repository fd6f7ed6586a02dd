import FederationProtocol
import Foundation
import GRPCCore
import Synchronization

/// An in-memory `Federation` service for the transport tests; the real coordinator lives elsewhere.
final class TestFederationService: Feddistill_V1_Federation.SimpleServiceProtocol {
    struct State {
        var joined: [String] = []
        var stored: [String: [UInt8]] = [:]
    }

    let sealingKeys: SealingKeys
    let roundID: UInt64 = 3
    let state = Mutex(State())

    init(sealingKeys: SealingKeys) { self.sealingKeys = sealingKeys }

    var joined: [String] { state.withLock { $0.joined } }
    var stored: [String: [UInt8]] { state.withLock { $0.stored } }

    func join(request: Feddistill_V1_JoinRequest, context: ServerContext) async throws -> Feddistill_V1_JoinResponse {
        let node = try PeerIdentity.requireNode(request.nodeID, context: context)
        try ProtocolVersion.require(request.protocolVersion)
        state.withLock { $0.joined.append(node) }
        var response = Feddistill_V1_JoinResponse()
        response.round.roundID = roundID
        response.round.federationID = "fed-test"
        response.round.datasetName = "digits"
        response.round.imageShape = [1, 8, 8]
        response.round.classCount = 10
        response.round.method = "dm"
        response.round.imagesPerClass = 10
        response.round.iterations = 100
        response.round.deadlineUnixSeconds = 2_000_000_000
        response.round.quorum = 1
        response.sealingPublicKey = Data(sealingKeys.publicKey.rawRepresentation)
        return response
    }

    func submit(
        request: RPCAsyncSequence<Feddistill_V1_SubmitChunk, any Error>, context: ServerContext
    ) async throws -> Feddistill_V1_Receipt {
        try await SubmissionReceiver.receiveAndStore(request, context: context, maxEnvelopeBytes: 64 << 20) {
            submission in
            guard submission.metadata.roundID == roundID else {
                throw RPCError(code: .failedPrecondition, message: "round \(submission.metadata.roundID) is not open")
            }
            state.withLock { $0.stored[submission.nodeID] = submission.envelope }  // "durably stored" in memory
            return 1_800_000_000
        }
    }

    func watchRound(
        request: Feddistill_V1_WatchRoundRequest, response: RPCWriter<Feddistill_V1_RoundEvent>, context: ServerContext
    ) async throws {
        try PeerIdentity.requireNode(request.nodeID, context: context)
        for node in joined {
            var event = Feddistill_V1_RoundEvent()
            event.roundID = request.roundID
            event.nodeJoined.nodeID = node
            try await response.write(event)
        }
        var closed = Feddistill_V1_RoundEvent()
        closed.roundID = request.roundID
        closed.roundClosed.submissionCount = UInt32(stored.count)
        try await response.write(closed)
    }

    func status(
        request: Feddistill_V1_StatusRequest, context: ServerContext
    ) async throws -> Feddistill_V1_StatusResponse {
        var response = Feddistill_V1_StatusResponse()
        response.rounds = 1
        response.nodes = UInt64(Set(joined).count)
        response.submissions = UInt64(stored.count)
        response.currentRoundID = roundID
        return response
    }

    func decline(request: Feddistill_V1_DeclineRequest, context: ServerContext) async throws -> Feddistill_V1_DeclineResponse {
        try PeerIdentity.requireNode(request.nodeID, context: context)
        return Feddistill_V1_DeclineResponse()
    }

    func startRound(request: Feddistill_V1_StartRoundRequest, context: ServerContext) async throws -> Feddistill_V1_StartRoundResponse {
        throw RPCError(code: .unimplemented, message: "the test service has one round")
    }

    func globalSet(request: Feddistill_V1_GlobalSetRequest, response: RPCWriter<Feddistill_V1_GlobalSetChunk>,
                   context: ServerContext) async throws {
        throw RPCError(code: .unimplemented, message: "the test service keeps no global sets")
    }
}
