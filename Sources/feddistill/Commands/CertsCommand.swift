import ArgumentParser
import FederationProtocol

struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs", abstract: "Create the federation CA and issue coordinator and node certificates.",
        discussion: """
            Files: DIR/ca.pem and DIR/ca.key for the CA, DIR/NAME.pem and DIR/NAME.key for each issued \
            certificate. Private keys are created with mode 0600; existing files are never replaced without --force.
            """,
        subcommands: [Init.self, Issue.self, Revoke.self, Export.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a federation CA (P-256, self-signed).")
        @Option(name: .customLong("dir"), help: "Directory for ca.pem and ca.key.") var directory: String
        @Option(help: "Subject common name of the CA.") var commonName = "FedDistill federation CA"
        @Option(help: "Validity in days.") var days = 3650
        @Flag(help: "Replace an existing CA (every certificate it issued stops being trusted).") var force = false

        func validate() throws {
            guard days > 0 else { throw ValidationError("--days must be positive") }
        }

        func run() throws {
            do {
                let ca = try CertificateAuthority.create(in: directory, commonName: commonName, validityDays: days,
                                                         overwrite: force)
                print("created federation CA in \(ca.directory): \(CertificateAuthority.caCertificateFile), "
                      + "\(CertificateAuthority.caKeyFile) (0600)")
            } catch { throw CommandFailure(error) }
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a coordinator, node or operator certificate.",
            discussion: "An operator certificate (TLS client) may start rounds (`feddistill round start`) and read status; "
                + "it is never accepted as a node.")
        enum Role: String, ExpressibleByArgument, CaseIterable { case coordinator, node, `operator` }

        @Option(name: .customLong("dir"), help: "The CA directory (from `certs init`).") var directory: String
        @Option(help: "coordinator (TLS server), node or operator (TLS clients).") var role: Role
        @Option(help: "Node id or coordinator name: a-z, 0-9, '-', '.'.") var name: String
        @Option(name: .customLong("san"), parsing: .singleValue,
                help: "Coordinator DNS name or IP address (repeatable; default: localhost and 127.0.0.1).")
        var subjectAlternativeNames: [String] = []
        @Option(help: "Validity in days.") var days = 825
        @Flag(help: "Replace an existing certificate and key of the same name.") var force = false

        func validate() throws {
            guard days > 0 else { throw ValidationError("--days must be positive") }
            if role != .coordinator, !subjectAlternativeNames.isEmpty {
                throw ValidationError("--san applies to coordinators; a node's or operator's SAN is its name")
            }
            do { try NodeName.validate(name) } catch { throw ValidationError(error.description) }
        }

        func run() throws {
            do {
                let ca = try CertificateAuthority.load(from: directory)
                let issuedRole: CertificateAuthority.Role = switch role {
                case .node: .node
                case .operator: .operator
                case .coordinator: .coordinator(subjectAlternativeNames: subjectAlternativeNames)
                }
                let issued = try ca.issue(
                    name: name,
                    role: issuedRole,
                    validityDays: days, overwrite: force)
                print("issued \(role.rawValue) certificate \(issued.credentials.certificatePath) "
                      + "with key \(issued.credentials.privateKeyPath) (0600)")
            } catch { throw CommandFailure(error) }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a node certificate: the coordinator refuses it from its next call on.",
            discussion: """
                Appends the SHA-256 fingerprint of DIR/NAME.pem to DIR/revoked.txt. The coordinator reads that file \
                (in its credentials directory) on every call; copy it there if the CA directory is elsewhere.
                """)
        @Option(name: .customLong("dir"), help: "Directory holding NAME.pem (and revoked.txt).") var directory: String
        @Option(help: "The certificate's name (node id).") var name: String

        func run() throws {
            do {
                let fingerprint = try RevocationList.revoke(name: name, inDirectory: directory)
                print("revoked \(name) (sha256 \(fingerprint)) in \(directory)/\(RevocationList.fileName)")
            } catch { throw CommandFailure(error) }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write provisioned credentials as Kubernetes Secret manifests (deploy/kubernetes mounts them).",
            discussion: """
                Reads a credentials root laid out by docker/provision.sh (coordinator/, one directory per node, \
                healthcheck/) and writes one Secret per role directory, named feddistill-ROLE-credentials, each file a \
                key. The CA directory (ca/) is never exported, and a role directory holding ca.key is refused. The \
                output holds private keys: it is written with mode 0600; apply it with `kubectl apply -f FILE` and never \
                commit it. Each organisation exports only its own node (--role NODE).
                """)
        @Flag(help: "Kubernetes Secret manifests (the only export format).") var kubernetes = false
        @Option(name: .customLong("dir"), help: "The credentials root (FEDDISTILL_CERTS_DIR of docker/provision.sh).")
        var directory: String
        @Option(name: .customLong("role"), parsing: .singleValue,
                help: "A role directory to export (repeatable; default: all but ca/).") var roles: [String] = []
        @Option(help: "The namespace the Secrets go in (default: none, the kubectl context's).") var namespace: String?
        @Option(help: "Output file (mode 0600); '-' for standard output.") var out = "-"
        @Flag(help: "Replace an existing output file.") var force = false

        func validate() throws {
            guard kubernetes else { throw ValidationError("choose an export format: --kubernetes") }
        }

        func run() throws {
            do {
                let manifests = try KubernetesSecrets.manifests(root: directory, roles: roles.isEmpty ? nil : roles,
                                                                namespace: namespace)
                if out == "-" {
                    print(manifests, terminator: "")
                } else {
                    try KubernetesSecrets.write(manifests, to: out, overwrite: force)
                    let count = manifests.split(separator: "\n").filter { $0 == "kind: Secret" }.count
                    print("wrote \(count) Secret manifest(s) to \(out) (0600; holds private keys, never commit it)")
                }
            } catch { throw CommandFailure(error) }
        }
    }
}
