import ArgumentParser
import FederationProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

struct RoundCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "round", abstract: "Operate a long-running coordinator's rounds.",
        subcommands: [Start.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open the coordinator's next round now.",
            discussion: """
                Needs an operator certificate from the federation CA (feddistill certs issue --role operator --name NAME); \
                node certificates are refused. Refused while a round is running. Opens the round after the current one \
                whatever the schedule says (also past --rounds, or with --rounds-on-demand true); registered long-lived \
                nodes (node --rounds 0) join it. Prints the new round's id and settings.
                """)
        @Option(help: "Coordinator HOST:PORT.") var coordinator: String
        @Option(name: .customLong("credentials-dir"), help: "Certificates and keys directory.") var credentialsDir = "certs"
        @Option(help: "The operator certificate's name in the credentials directory.") var name: String
        @Flag(help: "Print the new round's configuration as JSON.") var json = false

        func run() async throws {
            let parts = coordinator.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else {
                throw ValidationError("--coordinator must be HOST:PORT")
            }
            do {
                let transport = try FederationTransport.client(host: String(parts[0]), port: port,
                                                               credentials: TLSCredentials.inDirectory(credentialsDir, name: name))
                let round = try await withGRPCClient(transport: transport) { client in
                    try await Feddistill_V1_Federation.Client(wrapping: client).startRound(Feddistill_V1_StartRoundRequest()).round
                }
                if json {
                    print(try round.jsonDocument())
                } else {
                    print("round \(round.roundID) opened: \(round.datasetName), method \(round.method), IPC \(round.imagesPerClass), "
                          + "\(round.iterations) node iterations, quorum \(round.quorum), deadline "
                          + ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(round.deadlineUnixSeconds))))
                }
            } catch { throw CommandFailure(error) }
        }
    }
}
