import Crypto
import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#endif

/// The federation's certificate authority: a P-256 key and a self-signed CA certificate. It issues the
/// coordinator's server certificate and each node's client certificate; only holders of those can connect.
///
/// Files in the CA directory (certificates PEM, keys PKCS#8 PEM created with mode 0600):
/// ```
/// ca.pem  ca.key              the federation CA
/// NAME.pem  NAME.key          an issued coordinator or node certificate
/// ```
public struct CertificateAuthority: Sendable {
    /// File name of the CA certificate.
    public static let caCertificateFile = "ca.pem"
    /// File name of the CA private key.
    public static let caKeyFile = "ca.key"

    /// The CA certificate.
    public let certificate: Certificate
    private let privateKey: P256.Signing.PrivateKey
    /// The directory the CA lives in.
    public let directory: String

    /// What an issued certificate is for.
    public enum Role: Sendable, Hashable {
        /// The coordinator: TLS server, with these DNS names and IP addresses as subject alternative names.
        case coordinator(subjectAlternativeNames: [String])
        /// A node: TLS client, CN and SAN DNS name equal to the node id.
        case node
        /// An operator (`feddistill round start`): TLS client, CN and SAN DNS name equal to the operator's name, plus
        /// the SAN URI ``CertificateAuthority/operatorRoleURI``. Never accepted as a node.
        case `operator`
    }

    /// The SAN URI that marks an operator certificate.
    public static let operatorRoleURI = "urn:feddistill:role:operator"

    /// Default SANs of a coordinator certificate.
    public static let defaultCoordinatorNames = ["localhost", "127.0.0.1"]

    /// Creates a new CA and writes `ca.pem` and `ca.key` into `directory` (created with mode 0700 if missing).
    /// - Parameters:
    ///   - directory: Where to write.
    ///   - commonName: The CA's subject CN.
    ///   - validityDays: How long the CA certificate is valid.
    ///   - overwrite: Replace existing files; otherwise an existing file is an error.
    ///   - now: The start of validity (injected for tests).
    /// - Returns: The CA.
    /// - Throws: `ProvisioningError`.
    public static func create(
        in directory: String, commonName: String = "FedDistill federation CA", validityDays: Int = 3650,
        overwrite: Bool = false, now: Date = Date()
    ) throws(ProvisioningError) -> CertificateAuthority {
        try SecureFile.makeDirectory(directory)
        let certPath = directory + "/" + caCertificateFile
        let keyPath = directory + "/" + caKeyFile
        if !overwrite {
            for path in [certPath, keyPath] where SecureFile.exists(path) { throw .fileExists(path: path) }
        }
        let key = P256.Signing.PrivateKey()
        let certificate: Certificate
        do {
            let name = try DistinguishedName { CommonName(commonName) }
            let publicKey = Certificate.PublicKey(key.publicKey)
            certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
                notValidBefore: now.addingTimeInterval(-300),
                notValidAfter: now.addingTimeInterval(Double(validityDays) * 86_400),
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                    SubjectKeyIdentifier(hash: publicKey)
                },
                issuerPrivateKey: Certificate.PrivateKey(key))
        } catch { throw .certificateFailed(reason: String(describing: error)) }
        try SecureFile.write(key.pemRepresentation, to: keyPath, mode: SecureFile.privateMode, overwrite: overwrite)
        try SecureFile.write(try pem(certificate), to: certPath, mode: SecureFile.publicMode, overwrite: overwrite)
        return CertificateAuthority(certificate: certificate, privateKey: key, directory: directory)
    }

    /// Loads an existing CA from `ca.pem` and `ca.key` in `directory`.
    /// - Parameter directory: The CA directory.
    /// - Returns: The CA.
    /// - Throws: `ProvisioningError.readFailed` if a file is missing, unreadable or not a matching P-256 CA.
    public static func load(from directory: String) throws(ProvisioningError) -> CertificateAuthority {
        let certPath = directory + "/" + caCertificateFile
        let keyPath = directory + "/" + caKeyFile
        let certText = try SecureFile.readText(certPath)
        let keyText = try SecureFile.readText(keyPath)
        let certificate: Certificate
        do { certificate = try Certificate(pemEncoded: certText) } catch {
            throw .readFailed(path: certPath, reason: "not a PEM certificate")
        }
        let key: P256.Signing.PrivateKey
        do { key = try P256.Signing.PrivateKey(pemRepresentation: keyText) } catch {
            throw .readFailed(path: keyPath, reason: "not a P-256 private key in PEM")
        }
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw .readFailed(path: keyPath, reason: "key does not match \(certPath)")
        }
        return CertificateAuthority(certificate: certificate, privateKey: key, directory: directory)
    }

    /// Issues a certificate for `name` and writes `NAME.pem` and `NAME.key` (mode 0600) into the CA directory.
    /// - Parameters:
    ///   - name: The node id or coordinator name (see `NodeName.validate`).
    ///   - role: Coordinator (server) or node (client).
    ///   - validityDays: Validity of the certificate.
    ///   - overwrite: Replace existing files.
    ///   - now: The start of validity (injected for tests).
    /// - Returns: The certificate with its files as credentials.
    /// - Throws: `ProvisioningError`.
    @discardableResult
    public func issue(
        name: String, role: Role, validityDays: Int = 825, overwrite: Bool = false, now: Date = Date()
    ) throws(ProvisioningError) -> (certificate: Certificate, credentials: TLSCredentials) {
        try NodeName.validate(name)
        let credentials = TLSCredentials.inDirectory(directory, name: name)
        if !overwrite {
            for path in [credentials.certificatePath, credentials.privateKeyPath] where SecureFile.exists(path) {
                throw .fileExists(path: path)
            }
        }
        let key = P256.Signing.PrivateKey()
        let certificate = try makeCertificate(name: name, role: role, publicKey: key.publicKey,
                                              validityDays: validityDays, now: now)
        try SecureFile.write(key.pemRepresentation, to: credentials.privateKeyPath, mode: SecureFile.privateMode,
                             overwrite: overwrite)
        try SecureFile.write(try Self.pem(certificate), to: credentials.certificatePath, mode: SecureFile.publicMode,
                             overwrite: overwrite)
        return (certificate, credentials)
    }

    private func makeCertificate(
        name: String, role: Role, publicKey: P256.Signing.PublicKey, validityDays: Int, now: Date
    ) throws(ProvisioningError) -> Certificate {
        let sans: [GeneralName]
        let usage: ExtendedKeyUsage
        switch role {
        case .node:
            sans = [.dnsName(name)]
            usage = try wrap { try ExtendedKeyUsage([.clientAuth]) }
        case .operator:
            sans = [.dnsName(name), .uniformResourceIdentifier(Self.operatorRoleURI)]
            usage = try wrap { try ExtendedKeyUsage([.clientAuth]) }
        case .coordinator(let names):
            sans = try (names.isEmpty ? Self.defaultCoordinatorNames : names).map(Self.generalName)
            usage = try wrap { try ExtendedKeyUsage([.serverAuth]) }
        }
        return try wrap {
            let subject = try DistinguishedName { CommonName(name) }
            let leafKey = Certificate.PublicKey(publicKey)
            return try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: leafKey,
                notValidBefore: now.addingTimeInterval(-300),
                notValidAfter: now.addingTimeInterval(Double(validityDays) * 86_400),
                issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    usage
                    SubjectAlternativeNames(sans)
                    SubjectKeyIdentifier(hash: leafKey)
                    if let authority = try? certificate.extensions.subjectKeyIdentifier {
                        AuthorityKeyIdentifier(keyIdentifier: authority.keyIdentifier)
                    }
                },
                issuerPrivateKey: Certificate.PrivateKey(privateKey))
        }
    }

    /// A SAN from text: an IPv4 or IPv6 literal becomes an IP address entry, anything else must be a DNS name.
    static func generalName(_ text: String) throws(ProvisioningError) -> GeneralName {
        if let ip = IPAddressBytes.parse(text) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(ip))) }
        do { try NodeName.validate(text) } catch { throw .invalidSubjectAlternativeName(text) }
        return .dnsName(text)
    }

    static func pem(_ certificate: Certificate) throws(ProvisioningError) -> String {
        do { return try certificate.serializeAsPEM().pemString } catch {
            throw .certificateFailed(reason: "cannot encode certificate: \(error)")
        }
    }

    private func wrap<T>(_ body: () throws -> T) throws(ProvisioningError) -> T {
        do { return try body() } catch let error as ProvisioningError { throw error } catch {
            throw .certificateFailed(reason: String(describing: error))
        }
    }
}

/// Rules for node and coordinator names, which become certificate CNs, SAN DNS names and file names.
public enum NodeName {
    /// Checks `name`: 1–63 characters, lower-case ASCII letters, digits, `-` and `.`, starting and ending with a
    /// letter or digit (a DNS name, and safe as a file name).
    /// - Parameter name: The name.
    /// - Throws: `ProvisioningError.invalidName` explaining the rule that failed.
    public static func validate(_ name: String) throws(ProvisioningError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 63 else { throw .invalidName(name, reason: "must be 1–63 characters") }
        func isAlphanumeric(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) }
        guard bytes.allSatisfy({ isAlphanumeric($0) || $0 == 0x2d || $0 == 0x2e }) else {
            throw .invalidName(name, reason: "only a-z, 0-9, '-' and '.' are allowed")
        }
        guard let first = bytes.first, let last = bytes.last, isAlphanumeric(first), isAlphanumeric(last) else {
            throw .invalidName(name, reason: "must start and end with a letter or digit")
        }
        guard !name.contains("..") else { throw .invalidName(name, reason: "must not contain '..'") }
    }
}

/// Parsing of IP address literals for subject alternative names.
enum IPAddressBytes {
    static func parse(_ text: String) -> [UInt8]? {
        #if canImport(Glibc)
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        #endif
        return nil
    }
}
