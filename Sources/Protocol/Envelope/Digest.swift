import Crypto
import Foundation

/// The SHA-256 of `bytes` as 64 lowercase hex digits: how certificate fingerprints, envelope receipts and global-set
/// digests are written in files, results and on the wire.
public func sha256Hex(_ bytes: some DataProtocol) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}
