import ArgumentParser
import FederationProtocol

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Generate libsodium sealing (X25519) and signing (Ed25519) keys.",
        subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate NAME.sealing.{key,pub} and NAME.signing.{key,pub}.",
            discussion: """
                The coordinator seals envelopes to its sealing public key; a node signs envelopes with its \
                signing key and registers NAME.signing.pub with the coordinator. Secret files are PEM-armoured \
                32-byte keys created with mode 0600; existing files are never replaced without --force.
                """)
        @Option(name: .customLong("dir"), help: "Directory for the key files.") var directory: String
        @Option(help: "Node id or coordinator name: a-z, 0-9, '-', '.'.") var name: String
        @Flag(help: "Replace existing key files of the same name.") var force = false

        func validate() throws {
            do { try NodeName.validate(name) } catch { throw ValidationError(error.description) }
        }

        func run() throws {
            do {
                try KeyFiles.generate(in: directory, name: name, overwrite: force)
                let paths = KeyFiles.paths(in: directory, name: name)
                print("wrote \(paths.sealingKey) and \(paths.signingKey) (0600), "
                      + "\(paths.sealingPublic) and \(paths.signingPublic)")
            } catch { throw CommandFailure(error) }
        }
    }
}
