import FederationProtocol
import Testing

struct EnvelopeVerifierTests {
    let fixture: EnvelopeFixture
    let store = InMemoryReplayStore()
    let verifier: EnvelopeVerifier

    init() throws {
        fixture = try EnvelopeFixture(federationID: "fed-test", roundID: 7, nodeID: "node-a")
        verifier = EnvelopeVerifier(federationID: "fed-test", recipientKeys: fixture.coordinator,
                                    nodeSigningKeys: ["node-a": fixture.node.publicKey], replayStore: store)
    }

    @Test func acceptsAValidEnvelopeOnce() async throws {
        let bytes = try fixture.seal([1, 2, 3])
        let verified = try await verifier.verify(bytes, currentRound: 7, sender: "node-a")
        #expect(verified.payload == [1, 2, 3])
        #expect(verified.header.nodeID == "node-a")
        #expect(store.count == 1)
        await #expect(throws: EnvelopeError.replay(roundID: 7, nodeID: "node-a")) {
            try await verifier.verify(bytes, currentRound: 7, sender: "node-a")
        }
        // A fresh envelope (new nonce) from the same node in the same round is not a replay.
        _ = try await verifier.verify(try fixture.seal([4]), currentRound: 7, sender: "node-a")
        #expect(store.count == 2)
    }

    @Test func rejectsStaleAndFutureRounds() async throws {
        let bytes = try fixture.seal([1])
        await #expect(throws: EnvelopeError.staleRound(received: 7, current: 8)) {
            try await verifier.verify(bytes, currentRound: 8, sender: "node-a")
        }
        await #expect(throws: EnvelopeError.futureRound(received: 7, current: 6)) {
            try await verifier.verify(bytes, currentRound: 6, sender: "node-a")
        }
        #expect(store.count == 0)
    }

    @Test func rejectsSenderFederationAndUnknownNode() async throws {
        let bytes = try fixture.seal([1])
        await #expect(throws: EnvelopeError.senderMismatch(envelopeNode: "node-a", sender: "node-b")) {
            try await verifier.verify(bytes, currentRound: 7, sender: "node-b")
        }
        let foreign = try fixture.seal([1], header: EnvelopeHeader(federationID: "other", roundID: 7, nodeID: "node-a"))
        await #expect(throws: EnvelopeError.federationMismatch(received: "other", expected: "fed-test")) {
            try await verifier.verify(foreign, currentRound: 7, sender: nil)
        }
        let stranger = try fixture.seal(
            [1], header: EnvelopeHeader(federationID: "fed-test", roundID: 7, nodeID: "node-z"))
        await #expect(throws: EnvelopeError.unknownNode("node-z")) {
            try await verifier.verify(stranger, currentRound: 7, sender: nil)
        }
        let future = try fixture.seal(
            [1], header: EnvelopeHeader(protocolVersion: 99, federationID: "fed-test", roundID: 7, nodeID: "node-a"))
        await #expect(throws: EnvelopeError.protocolVersionMismatch(received: 99, supported: ProtocolVersion.current)) {
            try await verifier.verify(future, currentRound: 7, sender: nil)
        }
    }

    @Test func forgedEnvelopeDoesNotReachTheReplayStore() async throws {
        // Signed by a key that is not node-a's registered key.
        let impostor = try EnvelopeFixture(nodeID: "node-a")
        let forged = try SealedEnvelope.seal(payload: [1], recipient: fixture.coordinator.publicKey,
                                             signer: impostor.node, header: fixture.header).serialized()
        await #expect(throws: EnvelopeError.badSignature) {
            try await verifier.verify(forged, currentRound: 7, sender: "node-a")
        }
        #expect(store.count == 0)
    }

    @Test func replayStoreFailureIsReported() async throws {
        struct BrokenStore: ReplayStore {
            struct Failure: Error {}
            func recordIfAbsent(_ key: ReplayKey) async throws -> Bool { throw Failure() }
        }
        var broken = verifier
        broken.replayStore = BrokenStore()
        await #expect(throws: EnvelopeError.self) {
            try await broken.verify(try fixture.seal([1]), currentRound: 7, sender: "node-a")
        }
    }
}
