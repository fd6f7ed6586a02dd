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
            Prints `listening on HOST:PORT` once it serves (and `metrics on HOST:PORT` with --metrics-port, \
            `dashboard on HOST:PORT` with --dashboard-port). State \
            (registrations, sealed submissions, round state, results) lives in STATE_DIR/coordinator.sqlite; a \
            restarted coordinator resumes the round. SIGTERM/SIGINT stop it gracefully; SIGUSR1 closes the round now.
            """)

    @Option(help: "JSON config file.") var config: String?
    @Option(name: Self.table.name("host"), help: Self.table.help("host")) var host: String?
    @Option(name: Self.table.name("port"), help: Self.table.help("port")) var port: String?
    @Option(name: Self.table.name("state_dir"), help: Self.table.help("state_dir")) var stateDir: String?
    @Option(name: Self.table.name("credentials_dir"), help: Self.table.help("credentials_dir")) var credentialsDir: String?
    @Option(name: Self.table.name("federation_id"), help: Self.table.help("federation_id")) var federationID: String?
    @Option(name: Self.table.name("round_id"), help: Self.table.help("round_id")) var roundID: String?
    @Option(name: Self.table.name("dataset"), help: Self.table.help("dataset")) var dataset: String?
    @Option(name: Self.table.name("data_dir"), help: Self.table.help("data_dir")) var dataDir: String?
    @Option(name: Self.table.name("nodes"), help: Self.table.help("nodes")) var nodes: String?
    @Option(name: Self.table.name("quorum"), help: Self.table.help("quorum")) var quorum: String?
    @Option(name: Self.table.name("deadline_seconds"), help: Self.table.help("deadline_seconds")) var deadlineSeconds: String?
    @Option(name: Self.table.name("ipc"), help: Self.table.help("ipc")) var ipc: String?
    @Option(name: Self.table.name("node_iterations"), help: Self.table.help("node_iterations")) var nodeIterations: String?
    @Option(name: Self.table.name("formation_factor"), help: Self.table.help("formation_factor")) var formationFactor: String?
    @Option(name: Self.table.name("global_ipc"), help: Self.table.help("global_ipc")) var globalIPC: String?
    @Option(name: Self.table.name("merge_iterations"), help: Self.table.help("merge_iterations")) var mergeIterations: String?
    @Option(name: Self.table.name("width"), help: Self.table.help("width")) var width: String?
    @Option(name: Self.table.name("eval_models"), help: Self.table.help("eval_models")) var evalModels: String?
    @Option(name: Self.table.name("eval_epochs"), help: Self.table.help("eval_epochs")) var evalEpochs: String?
    @Option(name: Self.table.name("centralized_baseline"), help: Self.table.help("centralized_baseline")) var centralizedBaseline: String?
    @Option(name: Self.table.name("seed"), help: Self.table.help("seed")) var seed: String?
    @Option(name: Self.table.name("rounds"), help: Self.table.help("rounds")) var rounds: String?
    @Option(name: Self.table.name("round_interval"), help: Self.table.help("round_interval")) var roundInterval: String?
    @Option(name: Self.table.name("rounds_on_demand"), help: Self.table.help("rounds_on_demand")) var roundsOnDemand: String?
    @Option(name: Self.table.name("refine"), help: Self.table.help("refine")) var refine: String?
    @Option(name: Self.table.name("dashboard_port"), help: Self.table.help("dashboard_port")) var dashboardPort: String?
    @Option(name: Self.table.name("dashboard_host"), help: Self.table.help("dashboard_host")) var dashboardHost: String?
    @Option(name: Self.table.name("metrics_port"), help: Self.table.help("metrics_port")) var metricsPort: String?
    @Option(name: Self.table.name("metrics_host"), help: Self.table.help("metrics_host")) var metricsHost: String?
    @Option(name: Self.table.name("max_images_per_class"), help: Self.table.help("max_images_per_class")) var maxImagesPerClass: String?
    @Option(name: Self.table.name("max_envelope_bytes"), help: Self.table.help("max_envelope_bytes")) var maxEnvelopeBytes: String?
    @Option(name: Self.table.name("max_upload_bytes_in_flight"), help: Self.table.help("max_upload_bytes_in_flight")) var maxUploadBytesInFlight: String?
    @Option(name: Self.table.name("max_report_bytes"), help: Self.table.help("max_report_bytes")) var maxReportBytes: String?
    @Option(name: Self.table.name("max_finalization_attempts"), help: Self.table.help("max_finalization_attempts")) var maxFinalizationAttempts: String?
    @Option(name: Self.table.name("idle_timeout_seconds"), help: Self.table.help("idle_timeout_seconds")) var idleTimeoutSeconds: String?
    @Option(name: Self.table.name("max_concurrent_streams_per_connection"), help: Self.table.help("max_concurrent_streams_per_connection")) var maxConcurrentStreamsPerConnection: String?
    @Option(name: Self.table.name("max_connections"), help: Self.table.help("max_connections")) var maxConnections: String?
    @Option(name: Self.table.name("handshake_timeout_seconds"), help: Self.table.help("handshake_timeout_seconds")) var handshakeTimeoutSeconds: String?
    @OptionGroup var compute: ComputeOptions

    static var table: SettingsTable<CoordinatorConfiguration> { CoordinatorConfiguration.settingsTable }

    /// The flags given, by setting key.
    var flags: [String: String?] {
        [
            "host": host,
            "port": port,
            "state_dir": stateDir,
            "credentials_dir": credentialsDir,
            "federation_id": federationID,
            "round_id": roundID,
            "dataset": dataset,
            "data_dir": dataDir,
            "nodes": nodes,
            "quorum": quorum,
            "deadline_seconds": deadlineSeconds,
            "ipc": ipc,
            "node_iterations": nodeIterations,
            "formation_factor": formationFactor,
            "global_ipc": globalIPC,
            "merge_iterations": mergeIterations,
            "width": width,
            "eval_models": evalModels,
            "eval_epochs": evalEpochs,
            "centralized_baseline": centralizedBaseline,
            "seed": seed,
            "rounds": rounds,
            "round_interval": roundInterval,
            "rounds_on_demand": roundsOnDemand,
            "refine": refine,
            "dashboard_port": dashboardPort,
            "dashboard_host": dashboardHost,
            "metrics_port": metricsPort,
            "metrics_host": metricsHost,
            "max_images_per_class": maxImagesPerClass,
            "max_envelope_bytes": maxEnvelopeBytes,
            "max_upload_bytes_in_flight": maxUploadBytesInFlight,
            "max_report_bytes": maxReportBytes,
            "max_finalization_attempts": maxFinalizationAttempts,
            "idle_timeout_seconds": idleTimeoutSeconds,
            "max_concurrent_streams_per_connection": maxConcurrentStreamsPerConnection,
            "max_connections": maxConnections,
            "handshake_timeout_seconds": handshakeTimeoutSeconds,
        ]
    }

    func run() async throws {
        compute.apply()
        let configuration = try CoordinatorConfiguration(flags: flags, configFile: config)
        let logger = Logger(label: "feddistill.coordinator")
        let registry = configuration.metricsPort == nil ? nil : PrometheusCollectorRegistry()
        do {
            // Signal handling lives here, in the executable: SIGTERM/SIGINT stop gracefully, SIGUSR1 closes the round.
            _ = try await CoordinatorServer.run(configuration: configuration, logger: logger, metricsRegistry: registry,
                                                         shutdownSignals: [.sigterm, .sigint], closeRoundSignals: [.sigusr1],
                                                         onMetricsListening: { port in
                print("metrics on \(configuration.metricsHost):\(port)")
                Self.flush()
            }, onDashboardListening: { port in
                print("dashboard on \(configuration.dashboardHost):\(port)")
                Self.flush()
            }, onRoundResult: { result in
                print(String(format: "round %llu: global accuracy %.2f%% ± %.2f%%", result.roundID, 100 * result.global.mean,
                             100 * result.global.standardDeviation))
                Self.flush()
            }) { port in
                print("listening on \(configuration.host):\(port)")
                Self.flush()
            }
        } catch let concluded as RoundAlreadyConcluded where concluded.failure == nil {
            // Restarted (exit_after_round false) on a finished round, served it, and was stopped: nothing failed.
            print(concluded.description)
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
    @Option(name: Self.table.name("node_id"), help: Self.table.help("node_id")) var nodeID: String?
    @Option(name: Self.table.name("coordinator"), help: Self.table.help("coordinator")) var coordinator: String?
    @Option(name: Self.table.name("server_name"), help: Self.table.help("server_name")) var serverName: String?
    @Option(name: Self.table.name("credentials_dir"), help: Self.table.help("credentials_dir")) var credentialsDir: String?
    @Option(name: Self.table.name("dataset"), help: Self.table.help("dataset")) var dataset: String?
    @Option(name: Self.table.name("data_dir"), help: Self.table.help("data_dir")) var dataDir: String?
    @Option(name: Self.table.name("partition"), help: Self.table.help("partition")) var partition: String?
    @Option(name: Self.table.name("partition_nodes"), help: Self.table.help("partition_nodes")) var partitionNodes: String?
    @Option(name: Self.table.name("partition_index"), help: Self.table.help("partition_index")) var partitionIndex: String?
    @Option(name: Self.table.name("partition_seed"), help: Self.table.help("partition_seed")) var partitionSeed: String?
    @Option(name: Self.table.name("ipc"), help: Self.table.help("ipc")) var ipc: String?
    @Option(name: Self.table.name("iterations"), help: Self.table.help("iterations")) var iterations: String?
    @Option(name: Self.table.name("width"), help: Self.table.help("width")) var width: String?
    @Option(name: Self.table.name("seed"), help: Self.table.help("seed")) var seed: String?
    @Option(name: Self.table.name("state_dir"), help: Self.table.help("state_dir")) var stateDir: String?
    @Option(name: Self.table.name("privacy_gate"), help: Self.table.help("privacy_gate")) var privacyGate: String?
    @Option(name: Self.table.name("max_tpr_at_1pct_fpr"), help: Self.table.help("max_tpr_at_1pct_fpr")) var maxTPR: String?
    @Option(name: Self.table.name("privacy_gate_alpha"), help: Self.table.help("privacy_gate_alpha")) var privacyGateAlpha: String?
    @Option(name: Self.table.name("dp_epsilon"), help: Self.table.help("dp_epsilon")) var dpEpsilon: String?
    @Option(name: Self.table.name("dp_delta"), help: Self.table.help("dp_delta")) var dpDelta: String?
    @Option(name: Self.table.name("min_records_per_class"), help: Self.table.help("min_records_per_class")) var minRecordsPerClass: String?
    @Option(name: Self.table.name("rounds"), help: Self.table.help("rounds")) var rounds: String?
    @Flag(help: "Print machine-readable progress lines on stdout.") var progress = false
    @OptionGroup var compute: ComputeOptions

    static var table: SettingsTable<NodeConfiguration> { NodeConfiguration.settingsTable }

    /// The flags given, by setting key.
    var flags: [String: String?] {
        [
            "node_id": nodeID,
            "coordinator": coordinator,
            "server_name": serverName,
            "credentials_dir": credentialsDir,
            "dataset": dataset,
            "data_dir": dataDir,
            "partition": partition,
            "partition_nodes": partitionNodes,
            "partition_index": partitionIndex,
            "partition_seed": partitionSeed,
            "ipc": ipc,
            "iterations": iterations,
            "width": width,
            "seed": seed,
            "state_dir": stateDir,
            "privacy_gate": privacyGate,
            "max_tpr_at_1pct_fpr": maxTPR,
            "privacy_gate_alpha": privacyGateAlpha,
            "dp_epsilon": dpEpsilon,
            "dp_delta": dpDelta,
            "min_records_per_class": minRecordsPerClass,
            "rounds": rounds,
        ]
    }

    func run() async throws {
        compute.apply()
        let configuration = try NodeConfiguration(flags: flags, configFile: config)
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
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Ask a coordinator for its rounds, nodes and progress, or for its health.",
        discussion: """
            Prints the current round's phase and progress, the node table and the last rounds. With --json, prints the \
            status document the dashboard's /api/status serves (protobuf JSON, proto field names). With --watch, \
            follows the current round (or, between rounds, the next one) in the terminal until it ends; exits non-zero \
            if it fails. With --health, asks the standard gRPC health service (grpc.health.v1.Health) on the same \
            mutual-TLS port and prints every service's status; exits non-zero unless --service (default "", the server) \
            is SERVING, so that it can serve as an exec probe. Service names: "" and feddistill.v1.Federation (SERVING \
            while the coordinator serves, in every round phase) and feddistill.round (SERVING while the round admits \
            submissions).
            """)
    @Option(help: "Coordinator HOST:PORT.") var coordinator: String
    @Option(name: .customLong("credentials-dir"), help: "Certificates and keys directory.") var credentialsDir = "certs"
    @Option(help: "Client certificate name in the credentials directory (a node's or an operator's).") var name: String
    @Flag(help: "Ask the health service instead of the federation's status.") var health = false
    @Option(help: "With --health: the service whose status decides the exit status (\"\" is the server as a whole).")
    var service = ""
    @Flag(help: "Print the status as JSON (the dashboard's /api/status document).") var json = false
    @Flag(help: "Follow the current (or next) round until it ends.") var watch = false
    @Option(help: "With --watch: seconds between polls.") var interval = 1.0

    func validate() throws {
        if !health && service != "" { throw ValidationError("--service needs --health") }
        if health && (json || watch) { throw ValidationError("--health cannot be combined with --json or --watch") }
        if json && watch { throw ValidationError("--json and --watch cannot be combined") }
        guard interval.isFinite, interval >= 0.05, interval <= 3600 else { throw ValidationError("--interval must be in 0.05...3600 seconds") }
    }

    func run() async throws {
        let parts = coordinator.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--coordinator must be HOST:PORT") }
        let serving: Bool
        do {
            let transport = try FederationTransport.client(host: String(parts[0]), port: port,
                                                           credentials: TLSCredentials.inDirectory(credentialsDir, name: name))
            serving = try await withGRPCClient(transport: transport) { client in
                let federation = Feddistill_V1_Federation.Client(wrapping: client)
                guard health else {
                    if watch { return try await follow(federation) }
                    let status = try await federation.status(Feddistill_V1_StatusRequest())
                    print(json ? try status.jsonDocument() : Self.render(status))
                    return true
                }
                let checker = Grpc_Health_V1_Health.Client(wrapping: client)
                var request = Grpc_Health_V1_HealthCheckRequest()
                request.service = service
                // Check decides; List (a newer, optional method) only adds the other names when the server has it.
                let status = try await checker.check(request).status
                if let all = try? await checker.list(Grpc_Health_V1_HealthListRequest()) {
                    for (name, entry) in all.statuses.sorted(by: { $0.key < $1.key }) {
                        print("\(name.isEmpty ? "(server)" : name): \(Self.describe(entry.status))")
                    }
                } else {
                    print("\(service.isEmpty ? "(server)" : service): \(Self.describe(status))")
                }
                return status == .serving
            }
        } catch let error as RPCError where health && error.code == .notFound {
            throw CommandFailure("the coordinator reports no health status for service '\(service)'")
        } catch let failure as CommandFailure { throw failure } catch { throw CommandFailure(error) }
        guard serving else {
            throw CommandFailure("\(service.isEmpty ? "the coordinator" : "service \(service)") is not SERVING")
        }
    }

    /// Prints one line whenever the round's phase, step or node states change (progress at most every poll) until the
    /// followed round ends; throws when it fails.
    private func follow(_ federation: Feddistill_V1_Federation.Client<some ClientTransport>) async throws -> Bool {
        var followed: UInt64?
        var lastLine = ""
        var lastNodes = ""
        while true {
            let status = try await federation.status(Feddistill_V1_StatusRequest())
            let running = status.phase == .open || status.phase == .finalizing
            if followed == nil, running || status.currentRoundID > (status.history.first { $0.phase == .finished || $0.phase == .failed }?.roundID ?? 0) {
                followed = status.currentRoundID
            }
            let line = Self.progressLine(status)
            if line != lastLine {
                print(line)
                lastLine = line
            }
            let nodes = status.nodeTable.map { "\($0.nodeID)=\(Self.describe($0.state))" }.joined(separator: " ")
            if nodes != lastNodes {
                print("  nodes: " + nodes)
                lastNodes = nodes
            }
            Self.flush()
            if let followed, status.currentRoundID == followed, !running,
               let summary = status.history.first(where: { $0.roundID == followed }) {
                if summary.phase == .failed { throw CommandFailure("round \(followed) failed: \(summary.failure)") }
                return true
            }
            try await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
        }
    }

    static func progressLine(_ status: Feddistill_V1_StatusResponse) -> String {
        let step = status.progress
        var line = "round \(status.currentRoundID) \(describe(status.phase))"
        if !step.step.isEmpty { line += ": \(step.step)" }
        if step.total > 0 { line += " \(step.done)/\(step.total)" }
        if step.etaSeconds >= 0 { line += ", eta " + ProgressDisplay.clock(step.etaSeconds) }
        if status.nextRoundAtUnixSeconds > 0 {
            line += ", next round at " + ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(status.nextRoundAtUnixSeconds)))
        }
        return line
    }

    /// The terminal view: the round, its progress, the node table and the last five rounds.
    static func render(_ status: Feddistill_V1_StatusResponse) -> String {
        var lines = ["round \(status.currentRoundID) (\(describe(status.phase))): \(status.rounds) round(s), "
                     + "\(status.nodes) node(s) joined, \(status.submissions) submission(s)"]
        lines.append(progressLine(status))
        if !status.nodeTable.isEmpty {
            lines.append("nodes:")
            for node in status.nodeTable {
                var entry = "  \(PeerText.escaped(node.nodeID)) \(describe(node.state))"
                if !node.gate.isEmpty { entry += ", gate \(PeerText.escaped(node.gate))" }
                if node.envelopeBytes > 0 { entry += ", \(node.envelopeBytes) bytes" }
                if !node.detail.isEmpty { entry += ": \(PeerText.escaped(node.detail, maxCharacters: 200))" }
                lines.append(entry)
            }
        }
        if !status.history.isEmpty {
            lines.append("rounds:")
            for round in status.history.prefix(5) {
                var entry = "  \(round.roundID) \(describe(round.phase))"
                if round.phase == .finished {
                    entry += String(format: " %.2f%% ± %.2f%%", 100 * round.accuracyMean, 100 * round.accuracyStd)
                    entry += ", \(round.participants.count) participant(s)"
                }
                if !round.failure.isEmpty { entry += ": \(PeerText.escaped(round.failure, maxCharacters: 200))" }
                lines.append(entry)
            }
        }
        return lines.joined(separator: "\n")
    }

    static func describe(_ state: Feddistill_V1_NodeState) -> String {
        switch state {
        case .registered: "registered"
        case .joined: "joined"
        case .submitted: "submitted"
        case .rejected: "rejected"
        case .declined: "declined"
        case .unspecified, .UNRECOGNIZED: "unknown"
        }
    }

    static func describe(_ status: Grpc_Health_V1_HealthCheckResponse.ServingStatus) -> String {
        switch status {
        case .serving: "SERVING"
        case .notServing: "NOT_SERVING"
        case .serviceUnknown: "SERVICE_UNKNOWN"
        case .unknown, .UNRECOGNIZED: "UNKNOWN"
        }
    }

    static func describe(_ phase: Feddistill_V1_RoundPhase) -> String {
        switch phase {
        case .open: "open"
        case .finalizing: "finalizing"
        case .finished: "finished"
        case .failed: "failed"
        case .unspecified, .UNRECOGNIZED: "phase not reported"
        }
    }
}
