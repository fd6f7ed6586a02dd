import FederationProtocol
import Foundation

/// A fresh directory under the system temp directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        let base = FileManager.default.temporaryDirectory.path
        path = base + "/feddistill-protocol-tests-" + UUID().uuidString.lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// SplitMix64, for seeded test data.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomBytes(_ count: Int, using rng: inout SplitMix64) -> [UInt8] {
    (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
}

/// A coordinator sealing key pair, a node signing key pair and a header, ready to seal with.
struct EnvelopeFixture {
    let coordinator: SealingKeys
    let node: SigningKeys
    let header: EnvelopeHeader

    init(federationID: String = "fed-test", roundID: UInt64 = 7, nodeID: String = "node-a") throws {
        coordinator = try SealingKeys.generate()
        node = try SigningKeys.generate()
        header = EnvelopeHeader(federationID: federationID, roundID: roundID, nodeID: nodeID)
    }

    func seal(_ payload: [UInt8], header: EnvelopeHeader? = nil) throws -> [UInt8] {
        try SealedEnvelope.seal(payload: payload, recipient: coordinator.publicKey, signer: node,
                                header: header ?? self.header).serialized()
    }

    /// Parses and opens, as the coordinator does.
    func open(_ bytes: [UInt8], limits: EnvelopeLimits = .default) throws(EnvelopeError) -> [UInt8] {
        try SealedEnvelope.parse(bytes, limits: limits).open(recipientKeys: coordinator,
                                                             expectedSigner: node.publicKey)
    }
}
