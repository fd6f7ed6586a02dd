import FederationProtocol
import Foundation
import Testing

@Suite("Kubernetes Secret export")
struct KubernetesSecretsTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-k8s-\(UUID().uuidString)").path

    /// A root laid out as docker/provision.sh makes it: ca/ with the CA key, coordinator/, node-1/.
    func provision() throws {
        let ca = try CertificateAuthority.create(in: root + "/ca", commonName: "test CA")
        try ca.issue(name: "coordinator", role: .coordinator(subjectAlternativeNames: ["coordinator"]))
        try ca.issue(name: "node-1", role: .node)
        for role in ["coordinator", "node-1"] {
            try FileManager.default.createDirectory(atPath: root + "/" + role, withIntermediateDirectories: true)
            for file in ["ca.pem", "\(role).pem", "\(role).key"] {
                try FileManager.default.copyItem(atPath: root + "/ca/" + file, toPath: root + "/" + role + "/" + file)
            }
            try KeyFiles.generate(in: root + "/" + role, name: role)
        }
    }

    /// The Secrets' data, decoded: secret name → file name → bytes (a minimal reader of the YAML written above).
    func decode(_ yaml: String) -> [String: [String: Data]] {
        var secrets: [String: [String: Data]] = [:]
        var name = ""
        var inData = false
        for line in yaml.split(separator: "\n").map(String.init) {
            if line.hasPrefix("  name: ") { name = String(line.dropFirst(8)) }
            if line == "data:" { inData = true; continue }
            if line == "---" { inData = false }
            if inData, line.hasPrefix("  "), let colon = line.firstIndex(of: ":") {
                let key = String(line[line.index(line.startIndex, offsetBy: 2)..<colon])
                secrets[name, default: [:]][key] = Data(base64Encoded: String(line[line.index(colon, offsetBy: 2)...]))
            }
        }
        return secrets
    }

    @Test func everyRoleButTheCAIsExportedByteForByte() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try provision()
        let yaml = try KubernetesSecrets.manifests(root: root, namespace: "federation")
        let secrets = decode(yaml)
        #expect(Set(secrets.keys) == ["feddistill-coordinator-credentials", "feddistill-node-1-credentials"])
        #expect(!yaml.contains("feddistill-ca-credentials"))
        for (role, secret) in [("coordinator", secrets["feddistill-coordinator-credentials"]),
                               ("node-1", secrets["feddistill-node-1-credentials"])] {
            let files = try FileManager.default.contentsOfDirectory(atPath: root + "/" + role)
            #expect(Set(secret?.keys ?? [:].keys) == Set(files), "every file of \(role)/ is a key")
            for file in files {
                #expect(secret?[file] == FileManager.default.contents(atPath: root + "/" + role + "/" + file), "\(role)/\(file)")
            }
            #expect(secret?["ca.key"] == nil)
        }
        #expect(yaml.contains("  namespace: federation\n"))
        let one = try KubernetesSecrets.manifests(root: root, roles: ["node-1"])
        #expect(Set(decode(one).keys) == ["feddistill-node-1-credentials"], "an organisation exports only its node")
    }

    @Test func theCAKeyAndBadNamesAreRefusedWithTheirReason() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try provision()
        #expect(throws: ProvisioningError.self) { try KubernetesSecrets.manifests(root: root, roles: ["ca"]) }
        #expect(throws: ProvisioningError.self) { try KubernetesSecrets.manifests(root: root, roles: ["node-9"]) }
        #expect(throws: ProvisioningError.self) { try KubernetesSecrets.manifests(root: root, namespace: "Not_A_Namespace") }
        try FileManager.default.copyItem(atPath: root + "/ca/ca.key", toPath: root + "/node-1/ca.key")
        do {
            _ = try KubernetesSecrets.manifests(root: root)
            Issue.record("a role directory holding the CA key was exported")
        } catch {
            #expect(error.description.contains("CA's private key"))
        }
        #expect(throws: ProvisioningError.self) { try KubernetesSecrets.manifests(root: root + "/missing") }
    }
}
