import FederationProtocol
import GRPCCore
import Testing

struct EnvelopeTests {
    @Test func roundTripsPayloadAndHeader() throws {
        let fixture = try EnvelopeFixture()
        var rng = SplitMix64(seed: 1)
        let payload = randomBytes(10_000, using: &rng)
        let bytes = try fixture.seal(payload)
        #expect(Array(bytes.prefix(4)) == Array("FDSE".utf8))
        let envelope = try SealedEnvelope.parse(bytes, limits: .default)
        #expect(envelope.header == fixture.header)
        #expect(envelope.payloadByteCount == payload.count)
        #expect(envelope.serialized() == bytes)
        #expect(try fixture.open(bytes) == payload)
    }

    @Test func emptyPayloadRoundTrips() throws {
        let fixture = try EnvelopeFixture()
        #expect(try fixture.open(try fixture.seal([])) == [])
    }

    @Test func sealingTwiceGivesDifferentBytes() throws {
        let fixture = try EnvelopeFixture()
        let a = try fixture.seal([1, 2, 3])
        let b = try fixture.seal([1, 2, 3])
        #expect(a != b)
        #expect(try SealedEnvelope.parse(a, limits: .default).nonce != SealedEnvelope.parse(b, limits: .default).nonce)
    }

    @Test func rejectsEverySingleFlippedByte() throws {
        let fixture = try EnvelopeFixture()
        let bytes = try fixture.seal(Array("a small synthetic set".utf8))
        var accepted: [Int] = []
        for index in bytes.indices {
            for mask: UInt8 in [0x01, 0x80] {
                var tampered = bytes
                tampered[index] ^= mask
                if (try? fixture.open(tampered)) != nil { accepted.append(index) }
            }
        }
        #expect(accepted.isEmpty, "tampered envelopes accepted at offsets \(accepted)")
    }

    @Test func rejectsEveryTruncation() throws {
        let fixture = try EnvelopeFixture()
        let bytes = try fixture.seal(Array(repeating: 0x5a, count: 100))
        for length in 0..<bytes.count {
            #expect(throws: EnvelopeError.self) {
                try SealedEnvelope.parse(Array(bytes.prefix(length)), limits: .default)
            }
        }
    }

    @Test func truncationErrorNamesFieldAndOffset() throws {
        let fixture = try EnvelopeFixture()
        let bytes = try fixture.seal([1, 2, 3])
        #expect(throws: EnvelopeError.truncated(field: "magic", offset: 0, needed: 4, available: 2)) {
            try SealedEnvelope.parse(Array(bytes.prefix(2)), limits: .default)
        }
        let cut = bytes.count - 5  // inside the ciphertext
        do {
            _ = try SealedEnvelope.parse(Array(bytes.prefix(cut)), limits: .default)
            Issue.record("truncated envelope parsed")
        } catch {
            guard case .truncated(let field, let offset, _, _) = error else { Issue.record("\(error)"); return }
            #expect(field == "ciphertext")
            #expect(offset == bytes.count - 19)  // 3-byte payload + 16-byte tag
        }
    }

    @Test func rejectsTrailingBytes() throws {
        let fixture = try EnvelopeFixture()
        let bytes = try fixture.seal([1, 2, 3]) + [0]
        #expect(throws: EnvelopeError.trailingBytes(offset: bytes.count - 1, count: 1)) {
            try SealedEnvelope.parse(bytes, limits: .default)
        }
    }

    @Test func rejectsBadMagicAndVersion() throws {
        let fixture = try EnvelopeFixture()
        var bytes = try fixture.seal([1])
        bytes[4] = 2
        #expect(throws: EnvelopeError.unsupportedFormatVersion(2, offset: 4)) {
            try SealedEnvelope.parse(bytes, limits: .default)
        }
        bytes[0] = 0x47
        #expect(throws: EnvelopeError.badMagic(offset: 0)) { try SealedEnvelope.parse(bytes, limits: .default) }
    }

    @Test func wrongRecipientKeyCannotOpen() throws {
        let fixture = try EnvelopeFixture()
        let envelope = try SealedEnvelope.parse(try fixture.seal([9, 9, 9]), limits: .default)
        let other = try SealingKeys.generate()
        #expect(throws: EnvelopeError.wrongRecipient) {
            try envelope.open(recipientKeys: other, expectedSigner: fixture.node.publicKey)
        }
    }

    @Test func wrongSignerIsRejected() throws {
        let fixture = try EnvelopeFixture()
        let envelope = try SealedEnvelope.parse(try fixture.seal([9, 9, 9]), limits: .default)
        let impostor = try SigningKeys.generate()
        #expect(throws: EnvelopeError.badSignature) {
            try envelope.open(recipientKeys: fixture.coordinator, expectedSigner: impostor.publicKey)
        }
    }

    @Test func oversizeInputsAreRejectedBeforeAllocation() throws {
        let fixture = try EnvelopeFixture()
        let bytes = try fixture.seal(Array(repeating: 1, count: 1000))
        var limits = EnvelopeLimits.default
        limits.maxCiphertextBytes = 500
        #expect(throws: EnvelopeError.self) { try SealedEnvelope.parse(bytes, limits: limits) }
        do {
            _ = try SealedEnvelope.parse(bytes, limits: limits)
        } catch {
            guard case .tooLarge(let field, _, let length, let limit) = error else { Issue.record("\(error)"); return }
            #expect(field == "ciphertext" && length == 1016 && limit == 500)
        }
        limits = .default
        limits.maxEnvelopeBytes = bytes.count - 1
        #expect(throws: EnvelopeError.tooLarge(field: "envelope", offset: 0, length: bytes.count,
                                               limit: bytes.count - 1)) {
            try SealedEnvelope.parse(bytes, limits: limits)
        }
        // A forged ciphertext length of 2^64-1 is refused by the limit, not by an allocation.
        var forged = bytes
        let lengthOffset = 9 + headerLength(bytes) + 80 + 24 + 64
        for i in 0..<8 { forged[lengthOffset + i] = 0xff }
        #expect(throws: EnvelopeError.self) { try SealedEnvelope.parse(forged, limits: .default) }
        // A forged header length of 2^32-1 likewise.
        var forgedHeader = bytes
        for i in 5..<9 { forgedHeader[i] = 0xff }
        #expect(throws: EnvelopeError.tooLarge(field: "header", offset: 5, length: Int(UInt32.max), limit: 1024)) {
            try SealedEnvelope.parse(forgedHeader, limits: .default)
        }
    }

    @Test func sealRefusesOversizePayloadAndIdentifiers() throws {
        let fixture = try EnvelopeFixture()
        var limits = EnvelopeLimits.default
        limits.maxCiphertextBytes = 100
        #expect(throws: EnvelopeError.self) {
            try SealedEnvelope.seal(payload: Array(repeating: 0, count: 100), recipient: fixture.coordinator.publicKey,
                                    signer: fixture.node, header: fixture.header, limits: limits)
        }
        let longNode = EnvelopeHeader(federationID: "f", roundID: 1, nodeID: String(repeating: "n", count: 129))
        #expect(throws: EnvelopeError.self) { try fixture.seal([1], header: longNode) }
        let emptyFederation = EnvelopeHeader(federationID: "", roundID: 1, nodeID: "n")
        #expect(throws: EnvelopeError.self) { try fixture.seal([1], header: emptyFederation) }
    }

    @Test func errorsMapToRPCStatuses() {
        #expect(EnvelopeError.badSignature.rpcError.code == .unauthenticated)
        #expect(EnvelopeError.replay(roundID: 1, nodeID: "a").rpcError.code == .alreadyExists)
        #expect(EnvelopeError.staleRound(received: 1, current: 2).rpcError.code == .failedPrecondition)
        #expect(EnvelopeError.senderMismatch(envelopeNode: "a", sender: "b").rpcError.code == .permissionDenied)
        #expect(EnvelopeError.tooLarge(field: "x", offset: 0, length: 2, limit: 1).rpcError.code == .resourceExhausted)
        let error = EnvelopeError.truncated(field: "nonce", offset: 90, needed: 24, available: 3).rpcError
        #expect(error.code == .invalidArgument && error.message.contains("nonce") && error.message.contains("90"))
    }

    private func headerLength(_ bytes: [UInt8]) -> Int {
        bytes[5..<9].reduce(0) { $0 << 8 | Int($1) }
    }
}
