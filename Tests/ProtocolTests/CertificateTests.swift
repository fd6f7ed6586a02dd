import FederationProtocol
import Foundation
import GRPCCore
import SwiftASN1
import Testing
import X509

struct CertificateTests {
    @Test func issuedCertificatesChainToTheCA() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ca = try CertificateAuthority.create(in: directory.path)
        let coordinator = try ca.issue(name: "coordinator", role: .coordinator(subjectAlternativeNames: []))
        let node = try ca.issue(name: "node-a", role: .node)

        for leaf in [coordinator.certificate, node.certificate] {
            var verifier = Verifier(rootCertificates: CertificateStore([ca.certificate])) {
                RFC5280Policy()
            }
            let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
            guard case .validCertificate(let chain) = result else {
                Issue.record("certificate does not chain to the CA: \(result)")
                continue
            }
            #expect(chain.last == ca.certificate)
        }
        #expect(try PeerIdentity.nodeID(of: node.certificate) == "node-a")
        // A server certificate never passes as a node, even when its only DNS SAN equals its CN.
        let disguised = try ca.issue(name: "node-b", role: .coordinator(subjectAlternativeNames: ["node-b"]))
        #expect(throws: RPCError.self) { try PeerIdentity.nodeID(of: disguised.certificate) }
        #expect(throws: RPCError.self) { try PeerIdentity.nodeID(of: coordinator.certificate) }
        let sans = try #require(try coordinator.certificate.extensions.subjectAlternativeNames)
        #expect(sans.contains(.dnsName("localhost")))
        #expect(sans.contains(.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))))
        #expect(try node.certificate.extensions.extendedKeyUsage?.contains(.clientAuth) == true)
        #expect(try coordinator.certificate.extensions.extendedKeyUsage?.contains(.serverAuth) == true)

        // A certificate from another CA does not chain to this one.
        let otherDirectory = try TemporaryDirectory()
        defer { otherDirectory.remove() }
        let other = try CertificateAuthority.create(in: otherDirectory.path)
        let stranger = try other.issue(name: "node-a", role: .node)
        var verifier = Verifier(rootCertificates: CertificateStore([ca.certificate])) {
            RFC5280Policy()
        }
        let result = await verifier.validate(leaf: stranger.certificate, intermediates: CertificateStore())
        if case .validCertificate = result { Issue.record("foreign certificate chained to the CA") }
    }

    @Test func privateKeysAreMode0600() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ca = try CertificateAuthority.create(in: directory.path)
        let node = try ca.issue(name: "node-a", role: .node)
        try KeyFiles.generate(in: directory.path, name: "node-a")
        let keys = KeyFiles.paths(in: directory.path, name: "node-a")
        for path in [directory.path + "/ca.key", node.credentials.privateKeyPath, keys.sealingKey, keys.signingKey] {
            #expect(try mode(path) == 0o600, "\(path)")
        }
        let publicFiles = [directory.path + "/ca.pem", node.credentials.certificatePath, keys.sealingPublic,
                           keys.signingPublic]
        for path in publicFiles {
            #expect(try mode(path) & 0o400 != 0, "\(path)")  // public files: umask decides the rest
        }
    }

    @Test func neverOverwritesWithoutPermission() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ca = try CertificateAuthority.create(in: directory.path)
        #expect(throws: ProvisioningError.fileExists(path: directory.path + "/ca.pem")) {
            try CertificateAuthority.create(in: directory.path)
        }
        try ca.issue(name: "node-a", role: .node)
        let before = try Data(contentsOf: URL(fileURLWithPath: directory.path + "/node-a.key"))
        #expect(throws: ProvisioningError.self) { try ca.issue(name: "node-a", role: .node) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.path + "/node-a.key")) == before)
        try ca.issue(name: "node-a", role: .node, overwrite: true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.path + "/node-a.key")) != before)
        #expect(try mode(directory.path + "/node-a.key") == 0o600)

        try KeyFiles.generate(in: directory.path, name: "node-a")
        #expect(throws: ProvisioningError.self) { try KeyFiles.generate(in: directory.path, name: "node-a") }
    }

    @Test(arguments: ["", "Node-A", "node_a", "-node", "node-", "a..b", "../x", String(repeating: "a", count: 64)])
    func rejectsBadNames(_ name: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ca = try CertificateAuthority.create(in: directory.path)
        #expect(throws: ProvisioningError.self) { try ca.issue(name: name, role: .node) }
    }

    @Test func loadsTheCAAndRejectsAMissingOne() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        #expect(throws: ProvisioningError.self) { try CertificateAuthority.load(from: directory.path) }
        let created = try CertificateAuthority.create(in: directory.path)
        let loaded = try CertificateAuthority.load(from: directory.path)
        #expect(loaded.certificate == created.certificate)
    }

    @Test func keyFilesRoundTrip() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let generated = try KeyFiles.generate(in: directory.path, name: "coordinator")
        let paths = KeyFiles.paths(in: directory.path, name: "coordinator")
        let sealing = try KeyFiles.readSealingKeys(paths.sealingKey)
        let signing = try KeyFiles.readSigningKeys(paths.signingKey)
        #expect(sealing.publicKey == generated.sealing.publicKey)
        #expect(try KeyFiles.readSealingPublicKey(paths.sealingPublic) == generated.sealing.publicKey)
        #expect(signing.publicKey == generated.signing.publicKey)
        #expect(try KeyFiles.readSigningPublicKey(paths.signingPublic) == generated.signing.publicKey)
        // Keys restored from files seal and open.
        let header = EnvelopeHeader(federationID: "f", roundID: 1, nodeID: "coordinator")
        let envelope = try SealedEnvelope.seal(payload: [7], recipient: sealing.publicKey, signer: signing,
                                               header: header)
        #expect(try envelope.open(recipientKeys: generated.sealing, expectedSigner: generated.signing.publicKey) == [7])
        let secretFile = try String(contentsOfFile: paths.sealingKey, encoding: .utf8)
        #expect(!String(describing: generated.sealing).contains(secretFile))
        #expect(throws: ProvisioningError.self) { try KeyFiles.readSealingKeys(paths.signingPublic + ".missing") }
        #expect(throws: ProvisioningError.self) { try KeyFiles.readSigningKeys(paths.sealingKey) }  // wrong label
    }

    private func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? Int ?? -1) & 0o777
    }
}
