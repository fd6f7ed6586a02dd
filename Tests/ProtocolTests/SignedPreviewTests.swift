import Foundation
import Testing
@testable import FederationProtocol

@Suite("Signed previews")
struct SignedPreviewTests {
    static func fixture() throws -> (SigningKeys, SignedPreview) {
        let keys = try SigningKeys(seed: [UInt8](repeating: 7, count: 32))
        var rng = SplitMix64(seed: 3)
        let preview = try SignedPreview.create(set: randomBytes(5000, using: &rng), seller: "acme", keys: keys,
                                               description: "ten digits per class", recipe: #"{"method":"dm"}"#,
                                               auditReport: #"{"verdict":"pass"}"#, created: Date(timeIntervalSince1970: 0))
        return (keys, preview)
    }

    @Test func roundTripsWithTheSellersKey() throws {
        let (keys, preview) = try Self.fixture()
        let verified = try SignedPreview.verify(preview.encoded(), sellerKey: keys.publicKey)
        #expect(verified == preview)
        #expect(verified.manifest.seller == "acme" && verified.manifest.created == "1970-01-01T00:00:00Z")
        #expect(verified.manifest.auditReport == #"{"verdict":"pass"}"#)
    }

    @Test func anotherKeyIsRejected() throws {
        let (_, preview) = try Self.fixture()
        let other = try SigningKeys(seed: [UInt8](repeating: 8, count: 32))
        #expect(throws: PreviewError.badSignature("the signature does not verify with the given seller key")) {
            try SignedPreview.verify(preview.encoded(), sellerKey: other.publicKey)
        }
    }

    /// Flipping any single byte — magic, lengths, manifest, signature or set — is refused, never accepted.
    @Test func everyFlippedByteIsRefused() throws {
        let (keys, preview) = try Self.fixture()
        let bytes = preview.encoded()
        var rng = SplitMix64(seed: 9)
        let positions = Array(0..<(bytes.count - 5000 + 8)) + (0..<64).map { _ in bytes.count - 5000 + Int(rng.next() % 5000) }
        for position in positions {
            var tampered = bytes
            tampered[position] ^= 0x01
            #expect(throws: PreviewError.self, "byte \(position)") { try SignedPreview.verify(tampered, sellerKey: keys.publicKey) }
        }
    }

    @Test func truncatedAndExtendedFilesAreMalformed() throws {
        let (keys, preview) = try Self.fixture()
        let bytes = preview.encoded()
        for length in stride(from: 0, to: bytes.count, by: 97) {
            #expect(throws: PreviewError.self) { try SignedPreview.verify(Array(bytes.prefix(length)), sellerKey: keys.publicKey) }
        }
        do {
            _ = try SignedPreview.verify(bytes + [0], sellerKey: keys.publicKey)
            Issue.record("a trailing byte was accepted")
        } catch {
            #expect(error.description.contains("trailing"))
        }
        // A set length of 2⁶³ or more (negative as an Int) is refused, not trapped on.
        var negative = bytes
        let setLengthOffset = bytes.count - 5000 - 8
        negative.replaceSubrange(setLengthOffset..<setLengthOffset + 8, with: [UInt8](repeating: 0xFF, count: 8))
        #expect(throws: PreviewError.self) { try SignedPreview.verify(negative, sellerKey: keys.publicKey) }
        // A huge declared manifest length is refused before anything is read.
        var huge = bytes
        huge.replaceSubrange(11..<15, with: [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: PreviewError.self) { try SignedPreview.verify(huge, sellerKey: keys.publicKey) }
    }

    /// A manifest signed by one key but naming another is refused even though its signature verifies.
    @Test func theManifestMustNameTheVerifyingKey() throws {
        let (keys, preview) = try Self.fixture()
        var manifest = preview.manifest
        manifest.sellerPublicKey = String(repeating: "00", count: 32)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let manifestBytes = Array(try encoder.encode(manifest))
        let forged = SignedPreview(manifest: manifest, set: preview.set, manifestBytes: manifestBytes,
                                   signature: try keys.sign(SignedPreview.signedBytes(manifestBytes)))
        #expect(throws: PreviewError.badSignature("the manifest names another seller key")) {
            try SignedPreview.verify(forged.encoded(), sellerKey: keys.publicKey)
        }
        #expect(throws: PreviewError.self) {
            try SignedPreview.create(set: [1], seller: "Bad Name", keys: keys, description: "", recipe: "{}", auditReport: "{}")
        }
    }
}
