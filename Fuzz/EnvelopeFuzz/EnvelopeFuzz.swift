// libFuzzer target for the envelope parser. Built by scripts/fuzz-envelope.sh together with the parser sources
// (Sources/Protocol/Envelope, which import only CSodium), not by SwiftPM.

/// Fixed keys, so that inputs which parse also run the signature check and decryption.
let fuzzSealingKeys = try? SealingKeys(secretKey: [UInt8](repeating: 0x11, count: 32))
let fuzzSigningKeys = try? SigningKeys(seed: [UInt8](repeating: 0x22, count: 32))

let fuzzLimits = EnvelopeLimits(maxEnvelopeBytes: 1 << 20, maxHeaderBytes: 1024, maxIdentifierBytes: 128,
                                maxCiphertextBytes: 1 << 20)

@_cdecl("LLVMFuzzerTestOneInput")
public func envelopeFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard let envelope = try? SealedEnvelope.parse(bytes, limits: fuzzLimits) else { return 0 }
    // Whatever parses must serialize back to exactly the same bytes.
    precondition(envelope.serialized() == bytes, "parse/serialize round trip changed the bytes")
    if let keys = fuzzSealingKeys, let signer = fuzzSigningKeys {
        _ = try? envelope.open(recipientKeys: keys, expectedSigner: signer.publicKey)
    }
    return 0
}

#if canImport(Glibc)
import Glibc
#endif

/// With `FDSE_WRITE_SEED=PATH`, writes one valid envelope sealed with the fixed keys to PATH before fuzzing
/// starts, so that the corpus reaches the signature check and decryption from the first run.
@_cdecl("LLVMFuzzerInitialize")
public func envelopeFuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    guard let path = getenv("FDSE_WRITE_SEED"), let keys = fuzzSealingKeys, let signer = fuzzSigningKeys else {
        return 0
    }
    let header = EnvelopeHeader(federationID: "fuzz-federation", roundID: 1, nodeID: "fuzz-node")
    guard let envelope = try? SealedEnvelope.seal(payload: Array("synthetic set".utf8), recipient: keys.publicKey,
                                                  signer: signer, header: header, limits: fuzzLimits)
    else { return 0 }
    let bytes = envelope.serialized()
    if let file = fopen(path, "wb") {
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    return 0
}
