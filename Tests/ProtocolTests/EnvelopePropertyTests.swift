import FederationProtocol
import Testing

/// Properties over seeded random payloads (deterministic: the same inputs on every run).
struct EnvelopePropertyTests {
    @Test func anyPayloadRoundTrips() async throws {
        let fixture = try EnvelopeFixture()
        var rng = SplitMix64(seed: 0x5eed)
        for _ in 0..<200 {
            let payload = randomBytes(Int.random(in: 0...4096, using: &rng), using: &rng)
            let bytes = try fixture.seal(payload)
            #expect(bytes.count == SealedEnvelope.fixedOverheadBytes + 12 + 2 + 8 + 2 + 6 + payload.count + 16)
            #expect(try fixture.open(bytes) == payload)
        }
    }

    @Test func anyTruncationThrows() async throws {
        let fixture = try EnvelopeFixture()
        var rng = SplitMix64(seed: 0xc07)
        for _ in 0..<200 {
            let payload = randomBytes(Int.random(in: 0...512, using: &rng), using: &rng)
            let cut = Int.random(in: 0...10_000, using: &rng)
            let bytes = try fixture.seal(payload)
            let length = cut % bytes.count
            #expect(throws: EnvelopeError.self) {
                try SealedEnvelope.parse(Array(bytes.prefix(length)), limits: .default)
            }
        }
    }

    @Test func anyByteFlipIsRejected() throws {
        let fixture = try EnvelopeFixture()
        var rng = SplitMix64(seed: 0xfedd)
        for _ in 0..<300 {
            let payload = randomBytes(Int.random(in: 0...2048, using: &rng), using: &rng)
            var bytes = try fixture.seal(payload)
            let index = Int.random(in: bytes.indices, using: &rng)
            bytes[index] ^= UInt8.random(in: 1...255, using: &rng)
            #expect(throws: EnvelopeError.self, "flip at \(index) accepted") { try fixture.open(bytes) }
        }
    }

    @Test func randomBytesNeverCrashTheParser() throws {
        var rng = SplitMix64(seed: 42)
        let fixture = try EnvelopeFixture()
        let valid = try fixture.seal([1, 2, 3, 4])
        for round in 0..<2000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = randomBytes(Int.random(in: 0...400, using: &rng), using: &rng)
            } else {  // mostly valid prefix, random tail: reaches deeper fields
                bytes = Array(valid.prefix(Int.random(in: 0...valid.count, using: &rng)))
                bytes += randomBytes(Int.random(in: 0...64, using: &rng), using: &rng)
            }
            if bytes != valid, let envelope = try? SealedEnvelope.parse(bytes, limits: .default) {
                #expect(throws: EnvelopeError.self) {
                    try envelope.open(recipientKeys: fixture.coordinator, expectedSigner: fixture.node.publicKey)
                }
            }
        }
    }
}
