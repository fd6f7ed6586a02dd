import Foundation

/// A data-marketplace preview: a seller's synthetic set, its audit report and its recipe, signed with the seller's
/// Ed25519 key so that a buyer who knows the seller's public key can check who published it and that nothing changed.
///
/// The set, the report and the recipe are opaque here (bytes and JSON text); the executable reads them with Distill.
///
/// File layout (all integers big-endian):
/// ```
/// "FDPREVIEW1\n"                 11 bytes, the magic
/// u32 manifest length, manifest  canonical JSON (sorted keys) of `Manifest`
/// 64-byte signature              Ed25519, detached, over magic ‖ u32 length ‖ manifest
/// u64 set length, set bytes      the safetensors set; its SHA-256 and length are in the manifest
/// ```
public struct SignedPreview: Sendable, Equatable {
    public static let magic = Array("FDPREVIEW1\n".utf8)
    /// Upper bounds checked before anything is allocated.
    public static let maximumManifestBytes = 4 << 20
    public static let maximumSetBytes = 1 << 30

    /// What the signature covers besides the set's digest.
    public struct Manifest: Codable, Sendable, Equatable {
        public var format = "feddistill-preview/1"
        /// The seller's name (as in key files: a-z, 0-9, '-', '.').
        public var seller: String
        /// Hex of the seller's Ed25519 public key.
        public var sellerPublicKey: String
        public var setSHA256: String
        public var setBytes: Int
        /// ISO 8601, UTC.
        public var created: String
        public var description: String
        /// The set's recipe and the seller's `audit --json` report, as JSON text.
        public var recipe: String
        public var auditReport: String

        enum CodingKeys: String, CodingKey {
            case format, seller, created, description, recipe
            case sellerPublicKey = "seller_public_key", setSHA256 = "set_sha256", setBytes = "set_bytes"
            case auditReport = "audit_report"
        }
    }

    public let manifest: Manifest
    public let set: [UInt8]
    let manifestBytes: [UInt8]
    let signature: [UInt8]

    /// Signs a preview of `set` with `keys`.
    public static func create(set: [UInt8], seller: String, keys: SigningKeys, description: String, recipe: String,
                              auditReport: String, created: Date = Date()) throws(PreviewError) -> SignedPreview {
        do { try NodeName.validate(seller) } catch { throw .invalid("seller name: \(error.description)") }
        guard set.count <= maximumSetBytes else { throw .invalid("the set is larger than \(maximumSetBytes) bytes") }
        let manifest = Manifest(seller: seller, sellerPublicKey: keys.publicKey.rawRepresentation.hexString,
                                setSHA256: sha256Hex(set), setBytes: set.count,
                                created: ISO8601DateFormatter().string(from: created), description: description,
                                recipe: recipe, auditReport: auditReport)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let manifestBytes: [UInt8]
        do { manifestBytes = Array(try encoder.encode(manifest)) } catch { throw .invalid("cannot encode the manifest: \(error)") }
        guard manifestBytes.count <= maximumManifestBytes else { throw .invalid("the manifest (recipe and audit report) is too large") }
        let signature: [UInt8]
        do { signature = try keys.sign(signedBytes(manifestBytes)) } catch { throw .invalid("cannot sign: \(error)") }
        return SignedPreview(manifest: manifest, set: set, manifestBytes: manifestBytes, signature: signature)
    }

    static func signedBytes(_ manifest: [UInt8]) -> [UInt8] {
        magic + withUnsafeBytes(of: UInt32(manifest.count).bigEndian, Array.init) + manifest
    }

    /// The file's bytes.
    public func encoded() -> [UInt8] {
        Self.signedBytes(manifestBytes) + signature + withUnsafeBytes(of: UInt64(set.count).bigEndian, Array.init) + set
    }

    /// Parses a preview file and checks it against the seller's public key: the magic, every length, the signature,
    /// that the manifest names this key, and the set's length and SHA-256. Nothing unverified is returned.
    public static func verify(_ bytes: [UInt8], sellerKey: SigningPublicKey) throws(PreviewError) -> SignedPreview {
        var offset = 0
        func take(_ count: Int, _ what: String) throws(PreviewError) -> ArraySlice<UInt8> {
            guard count >= 0, count <= bytes.count - offset else {
                throw .malformed("truncated at \(what) (offset \(offset), \(bytes.count) bytes in the file)")
            }
            defer { offset += count }
            return bytes[offset..<offset + count]
        }
        func integer(_ width: Int, _ what: String) throws(PreviewError) -> Int {
            try take(width, what).reduce(0) { $0 << 8 | Int($1) }
        }
        guard Array(try take(magic.count, "the magic")) == magic else { throw .malformed("not a FedDistill preview (bad magic)") }
        let manifestLength = try integer(4, "the manifest length")
        guard manifestLength <= maximumManifestBytes else { throw .malformed("manifest length \(manifestLength) exceeds \(maximumManifestBytes)") }
        let manifestBytes = Array(try take(manifestLength, "the manifest"))
        let signature = Array(try take(64, "the signature"))
        guard sellerKey.isValidSignature(signature, for: signedBytes(manifestBytes)) else {
            throw .badSignature("the signature does not verify with the given seller key")
        }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: Data(manifestBytes)) } catch {
            throw .malformed("the signed manifest is not a preview manifest")
        }
        guard manifest.format == "feddistill-preview/1" else { throw .malformed("unsupported preview format") }
        guard manifest.sellerPublicKey == sellerKey.rawRepresentation.hexString else {
            throw .badSignature("the manifest names another seller key")
        }
        let setLength = try integer(8, "the set length")
        guard setLength <= maximumSetBytes, setLength == manifest.setBytes else {
            throw .malformed("set length \(setLength) differs from the manifest's \(manifest.setBytes)")
        }
        let set = Array(try take(setLength, "the set"))
        guard offset == bytes.count else { throw .malformed("\(bytes.count - offset) trailing bytes after the set") }
        guard sha256Hex(set) == manifest.setSHA256 else { throw .badSignature("the set's SHA-256 differs from the signed one") }
        return SignedPreview(manifest: manifest, set: set, manifestBytes: manifestBytes, signature: signature)
    }
}

/// Why a preview cannot be created or trusted.
public enum PreviewError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid(String)
    case malformed(String)
    case badSignature(String)

    public var description: String {
        switch self {
        case let .invalid(reason): "cannot create the preview: \(reason)"
        case let .malformed(reason): "malformed preview: \(reason)"
        case let .badSignature(reason): "preview rejected: \(reason)"
        }
    }
}
