import Crypto
import Foundation
import GRPCCore
import SwiftASN1
import X509

/// Certificates the federation no longer trusts, by SHA-256 fingerprint of their DER encoding.
///
/// File: `revoked.txt` in the credentials directory, one lowercase hex fingerprint per line, optionally followed by
/// a space and a comment (the certificate's name); `#` starts a comment line. `feddistill certs revoke` appends to
/// it. The coordinator reads the file on every call, so a revocation takes effect without a restart; a revoked node
/// is refused at join, submit and watch.
public struct RevocationList: Sendable, Equatable {
    /// The file name inside a credentials directory.
    public static let fileName = "revoked.txt"

    /// Revoked fingerprints (lowercase hex).
    public var fingerprints: Set<String>

    public init(fingerprints: Set<String> = []) { self.fingerprints = fingerprints }

    /// Loads the list in `directory`; a missing file is an empty list.
    /// - Throws: `ProvisioningError.readFailed` if the file exists but a line is not a fingerprint.
    public static func load(fromDirectory directory: String) throws(ProvisioningError) -> RevocationList {
        let path = directory + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { return RevocationList() }
        let text = try SecureFile.readText(path)
        var fingerprints: Set<String> = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let field = String(trimmed.prefix { !$0.isWhitespace }).lowercased()
            guard field.count == 64, field.allSatisfy(\.isHexDigit) else {
                throw .readFailed(path: path, reason: "line \(number + 1) is not a SHA-256 fingerprint")
            }
            fingerprints.insert(field)
        }
        return RevocationList(fingerprints: fingerprints)
    }

    /// Whether `certificate` is revoked.
    public func contains(_ certificate: Certificate) -> Bool {
        guard let fingerprint = try? Self.fingerprint(of: certificate) else { return false }
        return fingerprints.contains(fingerprint)
    }

    /// The lowercase hex SHA-256 of a certificate's DER encoding.
    public static func fingerprint(of certificate: Certificate) throws -> String {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return sha256Hex(serializer.serializedBytes)
    }

    /// Revokes the certificate `NAME.pem` in `directory` by appending its fingerprint to the list there.
    /// - Returns: The fingerprint.
    @discardableResult
    public static func revoke(name: String, inDirectory directory: String) throws(ProvisioningError) -> String {
        try NodeName.validate(name)
        let certificatePath = TLSCredentials.inDirectory(directory, name: name).certificatePath
        let certificate: Certificate
        do { certificate = try Certificate(pemEncoded: try SecureFile.readText(certificatePath)) } catch {
            throw .readFailed(path: certificatePath, reason: "not a PEM certificate")
        }
        let fingerprint: String
        do { fingerprint = try Self.fingerprint(of: certificate) } catch {
            throw .certificateFailed(reason: "cannot encode \(certificatePath)")
        }
        var list = try load(fromDirectory: directory)
        guard list.fingerprints.insert(fingerprint).inserted else { return fingerprint }
        let path = directory + "/" + fileName
        guard let handle = FileHandle(forWritingAtPath: path) ?? {
            FileManager.default.createFile(atPath: path, contents: Data("# revoked certificates (SHA-256 of DER)\n".utf8),
                                           attributes: [.posixPermissions: 0o644])
            return FileHandle(forWritingAtPath: path)
        }() else { throw .writeFailed(path: path, errno: errno) }
        defer { try? handle.close() }
        do {
            try handle.seekToEnd()
            try handle.write(contentsOf: Data("\(fingerprint) \(name)\n".utf8))
            try handle.synchronize()
        } catch { throw .writeFailed(path: path, errno: EIO) }
        return fingerprint
    }

    /// Refuses a call whose verified client certificate is revoked.
    /// - Throws: `RPCError(.permissionDenied)` naming the node.
    public func check(_ context: ServerContext) throws(RPCError) {
        guard let certificate = PeerIdentity.certificate(of: context) else { return }
        if contains(certificate) {
            let name = (try? PeerIdentity.nodeID(of: certificate)) ?? "unknown"
            throw RPCError(code: .permissionDenied, message: "the certificate of \(name) has been revoked")
        }
    }
}
