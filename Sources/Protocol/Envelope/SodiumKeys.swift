import CSodium

/// libsodium is initialised once, on first use (Swift globals are initialised lazily and thread-safely).
let sodiumInitialized: Bool = sodium_init() >= 0

func requireSodium() throws(EnvelopeError) {
    guard sodiumInitialized else { throw .cryptoFailure(operation: "sodium_init") }
}

/// An X25519 public key that envelopes are sealed to (`crypto_box_seal`); 32 bytes.
public struct SealingPublicKey: Sendable, Hashable {
    /// The 32 raw key bytes.
    public let rawRepresentation: [UInt8]

    /// Wraps raw key bytes.
    /// - Parameter rawRepresentation: Exactly 32 bytes.
    /// - Throws: `EnvelopeError.invalidField` if the length is wrong.
    public init(rawRepresentation: [UInt8]) throws(EnvelopeError) {
        guard rawRepresentation.count == Int(crypto_box_PUBLICKEYBYTES) else {
            throw .invalidField(field: "sealing public key", offset: 0, reason: "must be 32 bytes")
        }
        self.rawRepresentation = rawRepresentation
    }
}

/// The coordinator's X25519 key pair (`crypto_box_keypair`). The secret never appears in descriptions or logs.
public struct SealingKeys: Sendable {
    /// The public half, handed to nodes in `JoinResponse.sealingPublicKey`.
    public let publicKey: SealingPublicKey
    /// The 32-byte secret key; only key files and `open` read it.
    package let secretKey: [UInt8]

    /// Generates a fresh key pair with `crypto_box_keypair`.
    /// - Throws: `EnvelopeError.cryptoFailure` if libsodium cannot be initialised.
    public static func generate() throws(EnvelopeError) -> SealingKeys {
        try requireSodium()
        var pk = [UInt8](repeating: 0, count: Int(crypto_box_PUBLICKEYBYTES))
        var sk = [UInt8](repeating: 0, count: Int(crypto_box_SECRETKEYBYTES))
        guard crypto_box_keypair(&pk, &sk) == 0 else { throw .cryptoFailure(operation: "crypto_box_keypair") }
        return SealingKeys(publicKey: try SealingPublicKey(rawRepresentation: pk), secretKey: sk)
    }

    /// Restores a key pair from its 32-byte secret key, deriving the public key (`crypto_scalarmult_base`).
    /// - Parameter secretKey: The raw secret key.
    /// - Throws: `EnvelopeError.invalidField` if the length is wrong.
    public init(secretKey: [UInt8]) throws(EnvelopeError) {
        try requireSodium()
        guard secretKey.count == Int(crypto_box_SECRETKEYBYTES) else {
            throw .invalidField(field: "sealing secret key", offset: 0, reason: "must be 32 bytes")
        }
        var pk = [UInt8](repeating: 0, count: Int(crypto_box_PUBLICKEYBYTES))
        guard crypto_scalarmult_base(&pk, secretKey) == 0 else {
            throw .cryptoFailure(operation: "crypto_scalarmult_base")
        }
        self.init(publicKey: try SealingPublicKey(rawRepresentation: pk), secretKey: secretKey)
    }

    private init(publicKey: SealingPublicKey, secretKey: [UInt8]) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }
}

/// A node's Ed25519 public key, registered with the coordinator; 32 bytes.
public struct SigningPublicKey: Sendable, Hashable {
    /// The 32 raw key bytes.
    public let rawRepresentation: [UInt8]

    /// Wraps raw key bytes.
    /// - Parameter rawRepresentation: Exactly 32 bytes.
    /// - Throws: `EnvelopeError.invalidField` if the length is wrong.
    public init(rawRepresentation: [UInt8]) throws(EnvelopeError) {
        guard rawRepresentation.count == Int(crypto_sign_PUBLICKEYBYTES) else {
            throw .invalidField(field: "signing public key", offset: 0, reason: "must be 32 bytes")
        }
        self.rawRepresentation = rawRepresentation
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` by this key.
    func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard sodiumInitialized, signature.count == Int(crypto_sign_BYTES) else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), rawRepresentation) == 0
    }
}

/// A node's Ed25519 signing key pair (`crypto_sign_keypair`). The secret never appears in descriptions or logs.
public struct SigningKeys: Sendable {
    /// The public half, registered with the coordinator.
    public let publicKey: SigningPublicKey
    /// libsodium's 64-byte secret key (seed followed by public key).
    private let secretKey: [UInt8]

    /// Generates a fresh key pair with `crypto_sign_keypair`.
    /// - Throws: `EnvelopeError.cryptoFailure` if libsodium cannot be initialised.
    public static func generate() throws(EnvelopeError) -> SigningKeys {
        try requireSodium()
        var pk = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        var sk = [UInt8](repeating: 0, count: Int(crypto_sign_SECRETKEYBYTES))
        guard crypto_sign_keypair(&pk, &sk) == 0 else { throw .cryptoFailure(operation: "crypto_sign_keypair") }
        return SigningKeys(publicKey: try SigningPublicKey(rawRepresentation: pk), secretKey: sk)
    }

    /// Restores a key pair from its 32-byte seed (`crypto_sign_seed_keypair`); this is what key files hold.
    /// - Parameter seed: The raw seed.
    /// - Throws: `EnvelopeError.invalidField` if the length is wrong.
    public init(seed: [UInt8]) throws(EnvelopeError) {
        try requireSodium()
        guard seed.count == Int(crypto_sign_SEEDBYTES) else {
            throw .invalidField(field: "signing seed", offset: 0, reason: "must be 32 bytes")
        }
        var pk = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        var sk = [UInt8](repeating: 0, count: Int(crypto_sign_SECRETKEYBYTES))
        guard crypto_sign_seed_keypair(&pk, &sk, seed) == 0 else {
            throw .cryptoFailure(operation: "crypto_sign_seed_keypair")
        }
        self.init(publicKey: try SigningPublicKey(rawRepresentation: pk), secretKey: sk)
    }

    private init(publicKey: SigningPublicKey, secretKey: [UInt8]) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// The 32-byte seed the key pair is derived from; only key files read it.
    package var seed: [UInt8] { Array(secretKey.prefix(Int(crypto_sign_SEEDBYTES))) }

    /// A detached Ed25519 signature of `message`.
    func sign(_ message: [UInt8]) throws(EnvelopeError) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: Int(crypto_sign_BYTES))
        guard crypto_sign_detached(&signature, nil, message, UInt64(message.count), secretKey) == 0 else {
            throw .cryptoFailure(operation: "crypto_sign_detached")
        }
        return signature
    }
}

extension SealingKeys: CustomStringConvertible {
    /// Names the public key only.
    public var description: String { "SealingKeys(public: \(publicKey.rawRepresentation.hexString))" }
}

extension SigningKeys: CustomStringConvertible {
    /// Names the public key only.
    public var description: String { "SigningKeys(public: \(publicKey.rawRepresentation.hexString))" }
}

extension Array where Element == UInt8 {
    /// Lower-case hexadecimal.
    var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
