import ArgumentParser
import Coordinator
import Foundation
import Node
import Testing
@testable import feddistill

/// The coordinator's and node's typed settings: one table each, resolved from flags, environment and a JSON file.
@Suite("Settings")
struct SettingsTests {
    /// Writes `json` to a fresh file and returns its path; the caller removes it.
    func configFile(_ json: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-settings-\(UUID().uuidString).json").path
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func failure(_ body: () throws -> Void) -> String {
        do { try body() } catch { return String(describing: error) }
        return "no error"
    }

    @Test func flagBeatsEnvironmentBeatsFileBeatsDefault() throws {
        let file = try configFile(#"{"nodes": ["a", "b"], "round_id": 3, "seed": 4, "width": 32, "eval_models": 2}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let environment = ["FEDDISTILL_COORDINATOR_ROUND_ID": "5", "FEDDISTILL_COORDINATOR_SEED": "6", "HOME": "/h"]
        let configuration = try CoordinatorConfiguration(flags: ["round_id": "7", "seed": nil], configFile: file,
                                                         environment: environment)
        #expect(configuration.roundID == 7)  // flag over environment and file
        #expect(configuration.seed == 6)  // environment over file
        #expect(configuration.width == 32 && configuration.evaluationModels == 2)  // file over default
        #expect(configuration.evaluationEpochs == CoordinatorConfiguration().evaluationEpochs)  // default
        #expect(configuration.expectedNodes == ["a", "b"] && configuration.quorum == 2)  // quorum follows nodes
    }

    @Test func nodesAsAJSONArrayOrACommaSeparatedString() throws {
        for json in [#"{"nodes": ["n1", "n2", "n3"]}"#, #"{"nodes": "n1, n2,n3"}"#] {
            let file = try configFile(json)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let configuration = try CoordinatorConfiguration(flags: [:], configFile: file, environment: [:])
            #expect(configuration.expectedNodes == ["n1", "n2", "n3"], "\(json)")
        }
        let file = try configFile(#"{"nodes": ["n1", 2]}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let message = failure { _ = try CoordinatorConfiguration(flags: [:], configFile: file, environment: [:]) }
        #expect(message.contains("setting nodes (config file \(file))") && message.contains("a list of strings"), "\(message)")
    }

    @Test func aFloatForAnIntegerKeyInTheFileIsRefusedNamingKeyAndFile() throws {
        for json in [#"{"nodes": ["a"], "ipc": 2.5}"#, #"{"nodes": ["a"], "ipc": 2.0}"#, #"{"nodes": ["a"], "ipc": "2"}"#] {
            let file = try configFile(json)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let message = failure { _ = try CoordinatorConfiguration(flags: [:], configFile: file, environment: [:]) }
            #expect(message.hasPrefix("setting ipc (config file \(file)): must be an integer"), "\(json): \(message)")
        }
        // A boolean key wants a JSON boolean; a number key takes an integer too.
        let file = try configFile(#"{"node_id": "x", "privacy_gate": 1, "dp_delta": 0}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let message = failure { _ = try NodeConfiguration(flags: [:], configFile: file, environment: [:]) }
        #expect(message.hasPrefix("setting privacy_gate (config file \(file)): must be true or false"), "\(message)")
    }

    @Test func unknownKeysAreRefusedInTheFileAndTheEnvironment() throws {
        let file = try configFile(#"{"nodes": ["a"], "roundid": 2}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fromFile = failure { _ = try CoordinatorConfiguration(flags: [:], configFile: file, environment: [:]) }
        #expect(fromFile == "unknown setting(s): roundid (config file \(file))", "\(fromFile)")
        let fromEnvironment = failure {
            _ = try NodeConfiguration(flags: [:], configFile: nil, environment: ["FEDDISTILL_NODE_TYPO": "1"])
        }
        #expect(fromEnvironment == "unknown setting(s): typo (environment variable FEDDISTILL_NODE_TYPO)", "\(fromEnvironment)")
    }

    @Test func aNegativeRoundIDIsAnErrorNotATrap() throws {
        let flag = failure { _ = try CoordinatorConfiguration(flags: ["nodes": "a", "round_id": "-1"], configFile: nil, environment: [:]) }
        #expect(flag == "setting round_id (flag --round-id): must be a non-negative integer, got '-1'", "\(flag)")
        let file = try configFile(#"{"nodes": ["a"], "round_id": -1}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fromFile = failure { _ = try CoordinatorConfiguration(flags: [:], configFile: file, environment: [:]) }
        #expect(fromFile == "setting round_id (config file \(file)): must be a non-negative integer, got the integer -1", "\(fromFile)")
        let environment = failure {
            _ = try NodeConfiguration(flags: [:], configFile: nil, environment: ["FEDDISTILL_NODE_PARTITION_SEED": "-3"])
        }
        #expect(environment.hasPrefix("setting partition_seed (environment variable FEDDISTILL_NODE_PARTITION_SEED)"), "\(environment)")
    }

    @Test func nodeSettingsKeepTheirMeaning() throws {
        let configuration = try NodeConfiguration(flags: ["coordinator": "host:9000", "privacy_gate": "no"], configFile: nil,
                                                  environment: ["FEDDISTILL_NODE_DP_EPSILON": "8", "FEDDISTILL_NODE_IPC": "3"])
        #expect(configuration.coordinatorHost == "host" && configuration.coordinatorPort == 9000)
        #expect(!configuration.privacyGate && configuration.dpEpsilon == 8 && configuration.imagesPerClass == 3)
        #expect(configuration.iterations == nil)
        let message = failure { _ = try NodeConfiguration(flags: ["coordinator": "host"], configFile: nil, environment: [:]) }
        #expect(message.contains("coordinator must be HOST:PORT, got 'host'"), "\(message)")
    }

    /// A node distills with DP-DM at the default ε and withholds small classes unless told otherwise; `off` (flag,
    /// environment, or the file's "off"/null) turns differential privacy off; a negative minimum is refused.
    @Test func nodePrivacyDefaultsAndTheirOptOut() throws {
        let defaults = try NodeConfiguration(flags: [:], configFile: nil, environment: [:])
        #expect(defaults.dpEpsilon == NodeConfiguration.defaultDPEpsilon && defaults.minRecordsPerClass == NodeConfiguration.defaultMinRecordsPerClass)
        let flags = try NodeConfiguration(flags: ["dp_epsilon": "off", "min_records_per_class": "0"], configFile: nil, environment: [:])
        #expect(flags.dpEpsilon == nil && flags.minRecordsPerClass == 0)
        let environment = try NodeConfiguration(flags: [:], configFile: nil, environment: ["FEDDISTILL_NODE_DP_EPSILON": "OFF"])
        #expect(environment.dpEpsilon == nil)
        for text in [#"{"dp_epsilon": null}"#, #"{"dp_epsilon": "off"}"#, #"{"dp_epsilon": 2}"#] {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("node-\(UUID().uuidString).json").path
            try Data(text.utf8).write(to: URL(fileURLWithPath: file))
            defer { try? FileManager.default.removeItem(atPath: file) }
            let configuration = try NodeConfiguration(flags: [:], configFile: file, environment: [:])
            #expect(configuration.dpEpsilon == (text.contains("2") ? 2 : nil), "\(text)")
        }
        let word = failure { _ = try NodeConfiguration(flags: ["dp_epsilon": "none"], configFile: nil, environment: [:]) }
        #expect(word == "setting dp_epsilon (flag --dp-epsilon): must be a finite number or off, got 'none'", "\(word)")
        let negative = failure { _ = try NodeConfiguration(flags: ["min_records_per_class": "-1"], configFile: nil, environment: [:]) }
        #expect(negative.contains("min_records_per_class") && negative.contains("must be in 0..."), "\(negative)")
    }

    @Test func nodeRangesAreCheckedWhereTheyAreRead() {
        let nodes = failure { _ = try NodeConfiguration(flags: ["partition_nodes": "0"], configFile: nil, environment: [:]) }
        #expect(nodes == "setting partition_nodes (flag --partition-nodes): must be in 1..., got 0", "\(nodes)")
        let tpr = failure {
            _ = try NodeConfiguration(flags: [:], configFile: nil, environment: ["FEDDISTILL_NODE_MAX_TPR_AT_1PCT_FPR": "1.5"])
        }
        #expect(tpr == "setting max_tpr_at_1pct_fpr (environment variable FEDDISTILL_NODE_MAX_TPR_AT_1PCT_FPR): must be in 0.0...1.0, got 1.5",
                "\(tpr)")
    }

    /// Every setting with a flag in the table is a flag of its command, with the documented name.
    @Test func everyTableFlagParses() throws {
        for setting in CoordinatorConfiguration.settingsTable.settings {
            let arguments = ["coordinator", "--" + setting.flagName, "1"]
            if setting.hasFlag {
                let command = try #require(try FedDistillCommand.parseAsRoot(arguments) as? CoordinatorCommand)
                #expect(command.flags[setting.key] == "1", "\(setting.key)")
            } else {
                #expect(throws: (any Error).self, "\(setting.key)") { _ = try FedDistillCommand.parseAsRoot(arguments) }
            }
        }
        for setting in NodeConfiguration.settingsTable.settings {
            let arguments = ["node", "--" + setting.flagName, "1"]
            if setting.hasFlag {
                let command = try #require(try FedDistillCommand.parseAsRoot(arguments) as? NodeCommand)
                #expect(command.flags[setting.key] == "1", "\(setting.key)")
            } else {
                #expect(throws: (any Error).self, "\(setting.key)") { _ = try FedDistillCommand.parseAsRoot(arguments) }
            }
        }
        let flags = try #require(try FedDistillCommand.parseAsRoot(["coordinator", "--max-report-bytes", "8192"]) as? CoordinatorCommand).flags
        #expect(try CoordinatorConfiguration(flags: flags.merging(["nodes": "a"]) { $1 }, configFile: nil, environment: [:])
            .maxReportBytes == 8192)
    }
}
