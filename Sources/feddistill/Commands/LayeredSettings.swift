import ArgumentParser
import Coordinator
import Distill
import Foundation
import Node

/// Settings from, strongest first: command-line flags, `PREFIX_KEY` environment variables, a JSON config file, and
/// the defaults. Keys are snake_case (`round_id`); environment names are upper case (`FEDDISTILL_COORDINATOR_ROUND_ID`).
struct LayeredSettings {
    var values: [String: String] = [:]

    init(prefix: String, configFile: String?, flags: [String: String?]) throws {
        if let configFile {
            guard let data = FileManager.default.contents(atPath: configFile),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw CommandFailure("\(configFile): not a readable JSON object")
            }
            for (key, value) in object {
                if let list = value as? [Any] { values[key] = list.map { "\($0)" }.joined(separator: ",") } else { values[key] = "\(value)" }
            }
        }
        for (name, value) in ProcessInfo.processInfo.environment where name.hasPrefix(prefix + "_") {
            values[name.dropFirst(prefix.count + 1).lowercased()] = value
        }
        for (key, value) in flags { if let value { values[key] = value } }
    }

    func string(_ key: String) -> String? { values[key] }

    func int(_ key: String) throws -> Int? {
        guard let text = values[key] else { return nil }
        guard let value = Int(text) else { throw CommandFailure("setting \(key) must be an integer, got '\(text)'") }
        return value
    }

    func uint64(_ key: String) throws -> UInt64? {
        guard let text = values[key] else { return nil }
        guard let value = UInt64(text) else { throw CommandFailure("setting \(key) must be a non-negative integer, got '\(text)'") }
        return value
    }

    func double(_ key: String) throws -> Double? {
        guard let text = values[key] else { return nil }
        guard let value = Double(text), value.isFinite else { throw CommandFailure("setting \(key) must be a number, got '\(text)'") }
        return value
    }

    func bool(_ key: String) throws -> Bool? {
        guard let text = values[key]?.lowercased() else { return nil }
        switch text {
        case "1", "true", "yes": return true
        case "0", "false", "no": return false
        default: throw CommandFailure("setting \(key) must be true or false, got '\(text)'")
        }
    }

    /// Unknown keys are an error, so a typo in a config file does not pass silently.
    func rejectUnknown(_ known: Set<String>) throws {
        let unknown = Set(values.keys).subtracting(known)
        if !unknown.isEmpty { throw CommandFailure("unknown setting(s): \(unknown.sorted().joined(separator: ", "))") }
    }
}

extension CoordinatorConfiguration {
    static let keys: Set<String> = ["host", "port", "state_dir", "credentials_dir", "federation_id", "round_id", "dataset", "data_dir",
                                    "nodes", "quorum", "deadline_seconds", "method", "ipc", "node_iterations", "global_ipc",
                                    "merge_iterations", "width", "eval_models", "eval_epochs", "centralized_baseline",
                                    "exit_after_round", "linger_seconds", "seed", "metrics_port", "metrics_host",
                                    "max_images_per_class", "max_envelope_bytes", "max_upload_bytes_in_flight", "max_report_bytes",
                                    "max_finalization_attempts", "idle_timeout_seconds", "max_concurrent_streams_per_connection",
                                    "max_connections", "handshake_timeout_seconds"]

    init(settings s: LayeredSettings) throws {
        try s.rejectUnknown(Self.keys)
        self.init()
        host = s.string("host") ?? host
        port = try s.int("port") ?? port
        stateDirectory = s.string("state_dir") ?? stateDirectory
        credentialsDirectory = s.string("credentials_dir") ?? credentialsDirectory
        federationID = s.string("federation_id") ?? federationID
        roundID = try s.uint64("round_id") ?? roundID
        dataset = s.string("dataset") ?? dataset
        dataDirectory = s.string("data_dir")
        expectedNodes = s.string("nodes").map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } ?? []
        quorum = try s.int("quorum") ?? max(1, expectedNodes.count)
        deadlineSeconds = try s.double("deadline_seconds") ?? deadlineSeconds
        method = s.string("method") ?? method
        imagesPerClass = try s.int("ipc") ?? imagesPerClass
        nodeIterations = try s.int("node_iterations") ?? nodeIterations
        globalImagesPerClass = try s.int("global_ipc") ?? imagesPerClass
        mergeIterations = try s.int("merge_iterations") ?? mergeIterations
        width = try s.int("width") ?? width
        evaluationModels = try s.int("eval_models") ?? evaluationModels
        evaluationEpochs = try s.int("eval_epochs") ?? evaluationEpochs
        centralizedBaseline = try s.bool("centralized_baseline") ?? centralizedBaseline
        exitAfterRound = try s.bool("exit_after_round") ?? exitAfterRound
        lingerSeconds = try s.double("linger_seconds") ?? lingerSeconds
        metricsPort = try s.int("metrics_port")
        metricsHost = s.string("metrics_host") ?? metricsHost
        seed = try s.uint64("seed") ?? 0
        maxImagesPerClass = try s.int("max_images_per_class") ?? max(maxImagesPerClass, imagesPerClass)
        maxEnvelopeBytes = try s.int("max_envelope_bytes") ?? maxEnvelopeBytes
        maxUploadBytesInFlight = try s.int("max_upload_bytes_in_flight") ?? max(maxUploadBytesInFlight, maxEnvelopeBytes)
        maxReportBytes = try s.int("max_report_bytes") ?? maxReportBytes
        maxFinalizationAttempts = try s.int("max_finalization_attempts") ?? maxFinalizationAttempts
        idleTimeoutSeconds = try s.double("idle_timeout_seconds") ?? idleTimeoutSeconds
        maxConcurrentStreamsPerConnection = try s.int("max_concurrent_streams_per_connection") ?? maxConcurrentStreamsPerConnection
        maxConnections = try s.int("max_connections") ?? maxConnections
        handshakeTimeoutSeconds = try s.double("handshake_timeout_seconds") ?? handshakeTimeoutSeconds
        guard !expectedNodes.isEmpty else { throw CommandFailure("no nodes: set --nodes a,b,c (or FEDDISTILL_COORDINATOR_NODES)") }
        do { try validate() } catch { throw CommandFailure(error.description) }
    }
}

extension NodeConfiguration {
    static let keys: Set<String> = ["node_id", "coordinator", "server_name", "credentials_dir", "dataset", "data_dir", "partition",
                                    "partition_nodes", "partition_index", "partition_seed", "ipc", "iterations", "width", "seed",
                                    "state_dir", "max_attempts", "privacy_gate", "max_tpr_at_1pct_fpr", "dp_epsilon", "dp_delta"]

    init(settings s: LayeredSettings) throws {
        try s.rejectUnknown(Self.keys)
        self.init()
        nodeID = s.string("node_id") ?? nodeID
        if let coordinator = s.string("coordinator") {
            let parts = coordinator.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else {
                throw CommandFailure("coordinator must be HOST:PORT, got '\(coordinator)'")
            }
            (coordinatorHost, coordinatorPort) = (String(parts[0]), port)
        }
        serverName = s.string("server_name")
        credentialsDirectory = s.string("credentials_dir") ?? credentialsDirectory
        dataset = s.string("dataset") ?? dataset
        dataDirectory = s.string("data_dir")
        partition = s.string("partition") ?? partition
        partitionNodes = try s.int("partition_nodes") ?? partitionNodes
        partitionIndex = try s.int("partition_index") ?? partitionIndex
        partitionSeed = try s.uint64("partition_seed") ?? 0
        imagesPerClass = try s.int("ipc")
        iterations = try s.int("iterations")
        width = try s.int("width") ?? width
        seed = try s.uint64("seed") ?? 0
        stateDirectory = s.string("state_dir") ?? stateDirectory
        maxAttempts = try s.int("max_attempts") ?? maxAttempts
        privacyGate = try s.bool("privacy_gate") ?? privacyGate
        maxTPRAt1PercentFPR = try s.double("max_tpr_at_1pct_fpr") ?? maxTPRAt1PercentFPR
        dpEpsilon = try s.double("dp_epsilon")
        dpDelta = try s.double("dp_delta") ?? dpDelta
        if let dpEpsilon, let problem = PrivacyBudget(epsilon: dpEpsilon, delta: dpDelta).problem {
            throw CommandFailure("dp_epsilon/dp_delta: \(problem)")
        }
    }
}
