import ArgumentParser
import Coordinator
import Distill
import FederationProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Node
import Prometheus
import UnixSignals

struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator", abstract: "Run the coordinator for one round: receive sealed sets, merge, evaluate.",
        discussion: """
            Settings come from flags, then FEDDISTILL_COORDINATOR_* environment variables (e.g. \
            FEDDISTILL_COORDINATOR_NODES=a,b,c), then --config FILE (JSON with the same snake_case keys), then defaults. \
            Prints `listening on HOST:PORT` once it serves (and `metrics on HOST:PORT` with --metrics-port). State \
            (registrations, sealed submissions, round state, results) lives in STATE_DIR/coordinator.sqlite; a \
            restarted coordinator resumes the round. SIGTERM/SIGINT stop it gracefully; SIGUSR1 closes the round now.
            """)

    @Option(help: "JSON config file.") var config: String?
    @Option(help: "Listen address.") var host: String?
    @Option(help: "Listen port (0: any free port).") var port: String?
    @Option(name: .customLong("state-dir"), help: "State directory (submissions, results).") var stateDir: String?
    @Option(name: .customLong("credentials-dir"), help: "Certificates and keys directory.") var credentialsDir: String?
    @Option(name: .customLong("federation-id"), help: "Federation id.") var federationID: String?
    @Option(name: .customLong("round-id"), help: "Round id.") var roundID: String?
    @Option(help: "Dataset (the test split evaluates the global model).") var dataset: String?
    @Option(name: .customLong("data-dir"), help: "Dataset directory.") var dataDir: String?
    @Option(help: "Expected node ids, comma-separated.") var nodes: String?
    @Option(help: "Submissions needed to close at the deadline.") var quorum: String?
    @Option(name: .customLong("deadline-seconds"), help: "Round deadline in seconds.") var deadlineSeconds: String?
    @Option(help: "Images per class asked of nodes.") var ipc: String?
    @Option(name: .customLong("node-iterations"), help: "DM iterations asked of nodes.") var nodeIterations: String?
    @Option(name: .customLong("global-ipc"), help: "Images per class of the global set.") var globalIPC: String?
    @Option(name: .customLong("merge-iterations"), help: "DM iterations of the merge.") var mergeIterations: String?
    @Option(help: "ConvNet width.") var width: String?
    @Option(name: .customLong("eval-models"), help: "Models trained to evaluate each set.") var evalModels: String?
    @Option(name: .customLong("eval-epochs"), help: "Epochs per evaluation model.") var evalEpochs: String?
    @Option(name: .customLong("centralized-baseline"), help: "Simulation only: also run DM on the pooled data (true/false).")
    var centralizedBaseline: String?
    @Option(help: "Random seed.") var seed: String?
    @Option(name: .customLong("metrics-port"), help: "Serve Prometheus metrics at http://METRICS_HOST:PORT/metrics (0: any free port).")
    var metricsPort: String?
    @Option(name: .customLong("metrics-host"), help: "Metrics listen address (default 127.0.0.1).") var metricsHost: String?
    @OptionGroup var compute: ComputeOptions

    func run() async throws {
        compute.apply()
        let settings = try LayeredSettings(prefix: "FEDDISTILL_COORDINATOR", configFile: config, flags: [
            "host": host, "port": port, "state_dir": stateDir, "credentials_dir": credentialsDir, "federation_id": federationID,
            "round_id": roundID, "dataset": dataset, "data_dir": dataDir, "nodes": nodes, "quorum": quorum,
            "deadline_seconds": deadlineSeconds, "ipc": ipc, "node_iterations": nodeIterations, "global_ipc": globalIPC,
            "merge_iterations": mergeIterations, "width": width, "eval_models": evalModels, "eval_epochs": evalEpochs,
            "centralized_baseline": centralizedBaseline, "seed": seed, "metrics_port": metricsPort, "metrics_host": metricsHost,
        ])
        let configuration = try CoordinatorConfiguration(settings: settings)
        let logger = Logger(label: "feddistill.coordinator")
        let registry = configuration.metricsPort == nil ? nil : PrometheusCollectorRegistry()
        do {
            // Signal handling lives here, in the executable: SIGTERM/SIGINT stop gracefully, SIGUSR1 closes the round.
            let result = try await CoordinatorServer.run(configuration: configuration, logger: logger, metricsRegistry: registry,
                                                         shutdownSignals: [.sigterm, .sigint], closeRoundSignals: [.sigusr1],
                                                         onMetricsListening: { port in
                print("metrics on \(configuration.metricsHost):\(port)")
                Self.flush()
            }) { port in
                print("listening on \(configuration.host):\(port)")
                Self.flush()
            }
            print(String(format: "round %llu: global accuracy %.2f%% ± %.2f%%", result.roundID, 100 * result.global.mean,
                         100 * result.global.standardDeviation))
            Self.flush()
        } catch { throw CommandFailure(error) }
    }
}

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Distill a private partition and submit the sealed synthetic set.",
        discussion: """
            Settings come from flags, then FEDDISTILL_NODE_* environment variables, then --config FILE (JSON), then \
            defaults. The node retries with exponential backoff while the coordinator is unreachable. With \
            --progress it prints machine-readable `progress PHASE DONE TOTAL` lines.
            """)

    @Option(help: "JSON config file.") var config: String?
    @Option(name: .customLong("node-id"), help: "This node's id (its certificate's name).") var nodeID: String?
    @Option(help: "Coordinator HOST:PORT.") var coordinator: String?
    @Option(name: .customLong("server-name"), help: "Name to verify in the coordinator certificate.") var serverName: String?
    @Option(name: .customLong("credentials-dir"), help: "Certificates and keys directory.") var credentialsDir: String?
    @Option(help: "Dataset.") var dataset: String?
    @Option(name: .customLong("data-dir"), help: "Dataset directory.") var dataDir: String?
    @Option(help: "Partition scheme: iid, dirichlet:ALPHA, shards:K.") var partition: String?
    @Option(name: .customLong("partition-nodes"), help: "Number of partitions.") var partitionNodes: String?
    @Option(name: .customLong("partition-index"), help: "This node's partition (0-based).") var partitionIndex: String?
    @Option(name: .customLong("partition-seed"), help: "Partition seed.") var partitionSeed: String?
    @Option(help: "Override the round's images per class.") var ipc: String?
    @Option(help: "Override the round's DM iterations.") var iterations: String?
    @Option(help: "ConvNet width.") var width: String?
    @Option(help: "Random seed.") var seed: String?
    @Option(name: .customLong("state-dir"), help: "Where the node report is written.") var stateDir: String?
    @Option(name: .customLong("privacy-gate"), help: "Audit the set before sending and refuse to send if it leaks (true/false).")
    var privacyGate: String?
    @Option(name: .customLong("max-tpr-at-1pct-fpr"), help: "Privacy gate: largest TPR at 1% FPR allowed for any attack.")
    var maxTPR: String?
    @Option(name: .customLong("dp-epsilon"), help: "Distill with differential privacy (DP-DM) at this ε.") var dpEpsilon: String?
    @Option(name: .customLong("dp-delta"), help: "δ of the DP guarantee (default 1e-5).") var dpDelta: String?
    @Flag(help: "Print machine-readable progress lines on stdout.") var progress = false
    @OptionGroup var compute: ComputeOptions

    func run() async throws {
        compute.apply()
        let settings = try LayeredSettings(prefix: "FEDDISTILL_NODE", configFile: config, flags: [
            "node_id": nodeID, "coordinator": coordinator, "server_name": serverName, "credentials_dir": credentialsDir,
            "dataset": dataset, "data_dir": dataDir, "partition": partition, "partition_nodes": partitionNodes,
            "partition_index": partitionIndex, "partition_seed": partitionSeed, "ipc": ipc, "iterations": iterations,
            "width": width, "seed": seed, "state_dir": stateDir, "privacy_gate": privacyGate, "max_tpr_at_1pct_fpr": maxTPR,
            "dp_epsilon": dpEpsilon, "dp_delta": dpDelta,
        ])
        let configuration = try NodeConfiguration(settings: settings)
        let logger = Logger(label: "feddistill.node")
        let printProgress = progress
        do {
            let report = try await NodeRunner(configuration: configuration, logger: logger).run { phase, done, total in
                guard printProgress else { return }
                print("progress \(phase) \(done) \(total)")
                Self.flush()
            }
            let accuracy = report.globalAccuracyMean.map { String(format: "%.2f%%", 100 * $0) } ?? "n/a"
            print("node \(report.nodeID): \(report.privateImages) private images → \(report.syntheticImages) synthetic, "
                  + "\(report.bytesSent) bytes sent; global accuracy \(accuracy)")
        } catch { throw CommandFailure(error) }
    }
}

extension AsyncParsableCommand {
    /// Flushes standard output so that a parent process sees each line at once.
    static func flush() { fflush(nil) }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Ask a coordinator for its rounds, nodes and submissions.")
    @Option(help: "Coordinator HOST:PORT.") var coordinator: String
    @Option(name: .customLong("credentials-dir"), help: "Certificates and keys directory.") var credentialsDir = "certs"
    @Option(help: "Client certificate name in the credentials directory.") var name: String

    func run() async throws {
        let parts = coordinator.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--coordinator must be HOST:PORT") }
        do {
            let transport = try FederationTransport.client(host: String(parts[0]), port: port,
                                                           credentials: TLSCredentials.inDirectory(credentialsDir, name: name))
            let status = try await withGRPCClient(transport: transport) { client in
                try await Feddistill_V1_Federation.Client(wrapping: client).status(Feddistill_V1_StatusRequest())
            }
            print("round \(status.currentRoundID): \(status.rounds) round(s), \(status.nodes) node(s) joined, \(status.submissions) submission(s)")
        } catch { throw CommandFailure(error) }
    }
}
