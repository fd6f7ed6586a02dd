import ArgumentParser
import Coordinator
import Distill
import Foundation
import Node

/// Where a setting's value came from; every error names it.
enum SettingSource: Equatable, CustomStringConvertible {
    case flag(String)
    case environment(String)
    case file(String)

    var description: String {
        switch self {
        case let .flag(name): "flag --\(name)"
        case let .environment(name): "environment variable \(name)"
        case let .file(path): "config file \(path)"
        }
    }
}

/// A setting that could not be read: the key, where its value came from, and why.
struct SettingError: Error, CustomStringConvertible, Equatable {
    let key: String
    let source: SettingSource
    let message: String
    var description: String { "setting \(key) (\(source)): \(message)" }
}

/// How one type is read: from text (a flag or an environment variable) and from a typed JSON value (the file).
struct SettingType<Value> {
    /// What the error says a value must be ("an integer").
    let expected: String
    let text: (String) -> Value?
    let json: (StrictJSON.Value) -> Value?
}

extension SettingType where Value == Int {
    static var integer: Self {
        .init(expected: "an integer", text: { Int($0) }, json: { if case let .integer(v) = $0 { Int(exactly: v) } else { nil } })
    }
}

extension SettingType where Value == UInt64 {
    static var unsigned: Self {
        .init(expected: "a non-negative integer", text: { UInt64($0) },
              json: { if case let .integer(v) = $0 { UInt64(exactly: v) } else { nil } })
    }
}

extension SettingType where Value == Double {
    static var number: Self {
        .init(expected: "a finite number", text: { Double($0).flatMap { $0.isFinite ? $0 : nil } }, json: {
            switch $0 {
            case let .integer(v): Double(v)
            case let .number(v): v.isFinite ? v : nil
            default: nil
            }
        })
    }
}

/// `off` → nil, a finite number → itself, anything else → nil (the outer optional): `dp_epsilon` and
/// `simulate --dp-epsilon`.
func numberOrOff(_ text: String) -> Double?? {
    if text.lowercased() == "off" { return .some(nil) }
    return Double(text).flatMap { $0.isFinite ? .some($0) : nil }
}

extension SettingType where Value == Double? {
    /// A finite number, or `off` (nil): as text `off`; in the file a number, `"off"` or null.
    static var numberOrOff: Self {
        .init(expected: "a finite number or off", text: numberOrOff(_:), json: { value -> Double?? in
            switch value {
            case let .integer(v): .some(Double(v))
            case let .number(v): v.isFinite ? .some(v) : nil
            case .null: .some(nil)
            case let .string(text) where text.lowercased() == "off": .some(nil)
            default: nil
            }
        })
    }
}

extension SettingType where Value == Bool {
    /// `true`/`false`/`1`/`0`/`yes`/`no` as text; a JSON boolean in the file.
    static var boolean: Self {
        .init(expected: "true or false", text: {
            switch $0.lowercased() {
            case "1", "true", "yes": true
            case "0", "false", "no": false
            default: nil
            }
        }, json: { if case let .bool(v) = $0 { v } else { nil } })
    }
}

extension SettingType where Value == String {
    static var string: Self {
        .init(expected: "a string", text: { $0 }, json: { if case let .string(v) = $0 { v } else { nil } })
    }
}

extension SettingType where Value == [String] {
    /// Comma-separated as text; an array of strings (or one comma-separated string) in the file.
    static var list: Self {
        func split(_ text: String) -> [String] {
            text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        return .init(expected: "a list of strings", text: split, json: {
            switch $0 {
            case let .string(text): split(text)
            case let .array(items):
                items.allSatisfy { $0.stringValue != nil } ? items.compactMap(\.stringValue) : nil
            default: nil
            }
        })
    }
}

/// A value as found, before it is typed.
enum RawSetting {
    case text(String)
    case json(StrictJSON.Value)
}

/// One setting of a configuration, declared once: its key (the JSON key; upper-cased after the prefix it is the
/// environment variable; with `_` as `-` the flag), whether the command has a flag for it, its help, and how its
/// value is read into the configuration.
struct Setting<Configuration> {
    let key: String
    let hasFlag: Bool
    let help: String
    let apply: (inout Configuration, RawSetting, SettingSource) throws(SettingError) -> Void

    /// A setting stored by `set`, which returns why a well-typed value is still refused (nil: accepted).
    init<Value>(_ key: String, flag: Bool = true, _ type: SettingType<Value>, help: String,
                _ set: @escaping (inout Configuration, Value) -> String?) {
        self.key = key
        self.hasFlag = flag
        self.help = help
        apply = { configuration, raw, source throws(SettingError) in
            let value: Value?
            switch raw {
            case let .text(text): value = type.text(text)
            case let .json(json): value = type.json(json)
            }
            guard let value else {
                let found = switch raw {
                case let .text(text): "'\(text)'"
                case let .json(json): Self.describe(json)
                }
                throw SettingError(key: key, source: source, message: "must be \(type.expected), got \(found)")
            }
            if let problem = set(&configuration, value) { throw SettingError(key: key, source: source, message: problem) }
        }
    }

    /// A setting stored at `path`.
    init<Value>(_ key: String, flag: Bool = true, _ type: SettingType<Value>, help: String,
                _ path: WritableKeyPath<Configuration, Value>) {
        self.init(key, flag: flag, type, help: help) { configuration, value in
            configuration[keyPath: path] = value
            return nil
        }
    }

    /// A setting stored at `path` that must lie in `range` (the coordinator's ranges are checked by
    /// `CoordinatorConfiguration.validate()`; the node has no such check, so its table carries them).
    init<Value: Comparable>(_ key: String, flag: Bool = true, _ type: SettingType<Value>, in range: ClosedRange<Value>,
                            help: String, _ path: WritableKeyPath<Configuration, Value>) {
        self.init(key, flag: flag, type, help: help) { configuration, value in
            guard range.contains(value) else { return "must be in \(Self.describe(range)), got \(value)" }
            configuration[keyPath: path] = value
            return nil
        }
    }

    private static func describe<Value>(_ range: ClosedRange<Value>) -> String {
        if let upper = range.upperBound as? Int, upper == .max { return "\(range.lowerBound)..." }
        return "\(range.lowerBound)...\(range.upperBound)"
    }

    /// An optional setting stored at `path` (unset leaves nil).
    init<Value>(_ key: String, flag: Bool = true, _ type: SettingType<Value>, help: String,
                _ path: WritableKeyPath<Configuration, Value?>) {
        self.init(key, flag: flag, type, help: help) { configuration, value in
            configuration[keyPath: path] = value
            return nil
        }
    }

    /// The flag's name without dashes: the key with `-` for `_`.
    var flagName: String { key.replacingOccurrences(of: "_", with: "-") }

    private static func describe(_ json: StrictJSON.Value) -> String {
        switch json {
        case .object: "an object"
        case .array: "an array"
        case let .string(text): "the string \"\(text)\""
        case let .integer(v): "the integer \(v)"
        case let .number(v): "the number \(v)"
        case let .bool(v): "\(v)"
        case .null: "null"
        }
    }
}

/// The settings of one command, resolved from, strongest first: command-line flags, `PREFIX_KEY` environment
/// variables, a JSON config file, and the defaults of `Configuration()`. Keys are snake_case (`round_id`);
/// environment names are upper case (`FEDDISTILL_COORDINATOR_ROUND_ID`). Unknown keys are errors, in the file and
/// in the environment alike, so that a typo does not pass silently.
struct SettingsTable<Configuration> {
    let prefix: String
    let settings: [Setting<Configuration>]

    /// The setting named `key`; traps on a key the table lacks (a programming error in the command).
    subscript(key: String) -> Setting<Configuration> {
        guard let setting = settings.first(where: { $0.key == key }) else { preconditionFailure("no setting \(key)") }
        return setting
    }

    /// The flag of setting `key`, for the command's `@Option`.
    func name(_ key: String) -> NameSpecification { .customLong(self[key].flagName) }
    /// The help of setting `key`, for the command's `@Option`.
    func help(_ key: String) -> ArgumentHelp { ArgumentHelp(self[key].help) }

    /// Applies every setting found to `configuration`; returns the keys that were set (to derive defaults).
    /// `flags` maps keys to the values of their flags (nil: flag not given).
    @discardableResult
    func resolve(into configuration: inout Configuration, flags: [String: String?], configFile: String?,
                 environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Set<String> {
        let known = Set(settings.map(\.key))
        var found: [String: (RawSetting, SettingSource)] = [:]
        var unknown: [String] = []
        if let configFile {
            guard let data = FileManager.default.contents(atPath: configFile) else {
                throw CommandFailure("\(configFile): not a readable JSON object")
            }
            let document: StrictJSON.Value
            do { document = try StrictJSON.parse([UInt8](data)) } catch {
                throw CommandFailure("\(configFile): not a readable JSON object (\(error))")
            }
            guard let members = document.objectMembers else { throw CommandFailure("\(configFile): not a readable JSON object") }
            for (key, value) in members {
                if known.contains(key) { found[key] = (.json(value), .file(configFile)) } else { unknown.append("\(key) (config file \(configFile))") }
            }
        }
        for (name, value) in environment where name.hasPrefix(prefix + "_") {
            let key = name.dropFirst(prefix.count + 1).lowercased()
            if known.contains(key) { found[key] = (.text(value), .environment(name)) } else { unknown.append("\(key) (environment variable \(name))") }
        }
        for (key, value) in flags {
            guard let value else { continue }
            guard known.contains(key), self[key].hasFlag else { preconditionFailure("flag for setting \(key), which has none") }
            found[key] = (.text(value), .flag(self[key].flagName))
        }
        if !unknown.isEmpty { throw CommandFailure("unknown setting(s): \(unknown.sorted().joined(separator: ", "))") }
        for setting in settings {
            guard let (raw, source) = found[setting.key] else { continue }
            do { try setting.apply(&configuration, raw, source) } catch { throw CommandFailure(error.description) }
        }
        return Set(found.keys)
    }
}

extension CoordinatorConfiguration {
    /// Every coordinator setting: key, flag, help, type (docs/operations.md, Configuration, lists the same).
    static var settingsTable: SettingsTable<Self> {
        SettingsTable(prefix: "FEDDISTILL_COORDINATOR", settings: [
            Setting("host", .string, help: "Listen address.", \.host),
            Setting("port", .integer, help: "Listen port (0: any free port).", \.port),
            Setting("state_dir", .string, help: "State directory (submissions, results).", \.stateDirectory),
            Setting("credentials_dir", .string, help: "Certificates and keys directory.", \.credentialsDirectory),
            Setting("federation_id", .string, help: "Federation id.", \.federationID),
            Setting("round_id", .unsigned, help: "Round id.", \.roundID),
            Setting("dataset", .string, help: "Dataset (the test split evaluates the global model).", \.dataset),
            Setting("data_dir", .string, help: "Dataset directory.", \.dataDirectory),
            Setting("nodes", .list, help: "Expected node ids, comma-separated.", \.expectedNodes),
            Setting("quorum", .integer, help: "Submissions needed to close at the deadline.", \.quorum),
            Setting("deadline_seconds", .number, help: "Round deadline in seconds.", \.deadlineSeconds),
            Setting("method", flag: false, .string, help: "Method of the recipe sent to nodes (dm, dc, dsa, random, herding).", \.method),
            Setting("ipc", .integer, help: "Images per class asked of nodes.", \.imagesPerClass),
            Setting("node_iterations", .integer, help: "DM iterations asked of nodes.", \.nodeIterations),
            Setting("formation_factor", .integer, help: "Multi-formation factor of the nodes' DM sets (1: none; 2: each stored image is 2×2 training images).",
                    \.formationFactor),
            Setting("global_ipc", .integer, help: "Images per class of the global set.", \.globalImagesPerClass),
            Setting("merge_iterations", .integer, help: "DM iterations of the merge.", \.mergeIterations),
            Setting("width", .integer, help: "ConvNet width.", \.width),
            Setting("eval_models", .integer, help: "Models trained to evaluate each set.", \.evaluationModels),
            Setting("eval_epochs", .integer, help: "Epochs per evaluation model.", \.evaluationEpochs),
            Setting("centralized_baseline", .boolean, help: "Simulation only: also run DM on the pooled data (true/false).",
                    \.centralizedBaseline),
            Setting("rounds", .integer, help: "Rounds to run, from round_id on (0: until stopped); each restart resumes the schedule.",
                    \.rounds),
            Setting("round_interval", .number, help: "Seconds between the end of a round and the start of the next.",
                    \.roundIntervalSeconds),
            Setting("rounds_on_demand", .boolean, help: "Rounds after the first start only with `feddistill round start` (true/false).",
                    \.roundsOnDemand),
            Setting("refine", .boolean, help: "Multi-round refinement: nodes start each round after the first from the latest global set (true/false).",
                    \.refine),
            Setting("dashboard_port", .integer, help: "Serve the dashboard (web page and JSON API) on this port (0: any free port).",
                    \.dashboardPort),
            Setting("dashboard_host", .string, help: "Dashboard listen address (default 127.0.0.1; see docs/threat-model.md).",
                    \.dashboardHost),
            Setting("exit_after_round", flag: false, .boolean, help: "Stop serving once the last scheduled round's result is written (true/false); false also serves a round that ended before a restart.",
                    \.exitAfterRound),
            Setting("linger_seconds", flag: false, .number, help: "After the result, serve until every submitter has it, at most this long.",
                    \.lingerSeconds),
            Setting("seed", .unsigned, help: "Random seed.", \.seed),
            Setting("metrics_port", .integer, help: "Serve /metrics (Prometheus), /healthz and /readyz over HTTP on this port (0: any free port).",
                    \.metricsPort),
            Setting("metrics_host", .string, help: "Metrics listen address (default 127.0.0.1).", \.metricsHost),
            Setting("max_images_per_class", .integer, help: "Refuse sets with more images per class (default 100, at least ipc).",
                    \.maxImagesPerClass),
            Setting("max_envelope_bytes", .integer, help: "Largest envelope accepted, in bytes.", \.maxEnvelopeBytes),
            Setting("max_upload_bytes_in_flight", .integer, help: "Envelope bytes received by all uploads at once.",
                    \.maxUploadBytesInFlight),
            Setting("max_report_bytes", .integer, help: "Largest report in the final event, in bytes.", \.maxReportBytes),
            Setting("max_finalization_attempts", .integer, help: "Finalisation starts per round before the round fails.",
                    \.maxFinalizationAttempts),
            Setting("idle_timeout_seconds", .number, help: "Close a connection with no call in progress after this long.",
                    \.idleTimeoutSeconds),
            Setting("max_concurrent_streams_per_connection", .integer, help: "Calls one connection may carry at once.",
                    \.maxConcurrentStreamsPerConnection),
            Setting("max_connections", .integer, help: "Open connections at once; more are closed at accept.", \.maxConnections),
            Setting("handshake_timeout_seconds", .number, help: "Close a connection whose TLS handshake takes longer.",
                    \.handshakeTimeoutSeconds),
        ])
    }

    /// The configuration the table resolves to, with the defaults that follow other settings (quorum: every node;
    /// global_ipc: ipc; max_images_per_class: at least ipc; max_upload_bytes_in_flight: at least one envelope), checked
    /// by `validate()`.
    init(flags: [String: String?], configFile: String?,
         environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.init()
        let set = try Self.settingsTable.resolve(into: &self, flags: flags, configFile: configFile, environment: environment)
        if !set.contains("quorum") { quorum = max(1, expectedNodes.count) }
        if !set.contains("global_ipc") { globalImagesPerClass = imagesPerClass }
        if !set.contains("max_images_per_class") { maxImagesPerClass = max(maxImagesPerClass, imagesPerClass) }
        if !set.contains("max_upload_bytes_in_flight") { maxUploadBytesInFlight = max(maxUploadBytesInFlight, maxEnvelopeBytes) }
        guard !expectedNodes.isEmpty else { throw CommandFailure("no nodes: set --nodes a,b,c (or FEDDISTILL_COORDINATOR_NODES)") }
        do { try validate() } catch { throw CommandFailure(error.description) }
    }
}

extension NodeConfiguration {
    /// Every node setting: key, flag, help, type (docs/operations.md, Configuration, lists the same).
    static var settingsTable: SettingsTable<Self> {
        SettingsTable(prefix: "FEDDISTILL_NODE", settings: [
            Setting("node_id", .string, help: "This node's id (its certificate's name).", \.nodeID),
            Setting("coordinator", .string, help: "Coordinator HOST:PORT.") { configuration, text in
                let parts = text.split(separator: ":")
                guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else {
                    return "coordinator must be HOST:PORT, got '\(text)'"
                }
                (configuration.coordinatorHost, configuration.coordinatorPort) = (String(parts[0]), port)
                return nil
            },
            Setting("server_name", .string, help: "Name to verify in the coordinator certificate.", \.serverName),
            Setting("credentials_dir", .string, help: "Certificates and keys directory.", \.credentialsDirectory),
            Setting("dataset", .string, help: "Dataset.", \.dataset),
            Setting("data_dir", .string, help: "Dataset directory.", \.dataDirectory),
            Setting("partition", .string, help: "Partition scheme: iid, dirichlet:ALPHA, shards:K.", \.partition),
            Setting("partition_nodes", .integer, in: 1...Int.max, help: "Number of partitions.", \.partitionNodes),
            Setting("partition_index", .integer, in: 0...Int.max, help: "This node's partition (0-based).", \.partitionIndex),
            Setting("partition_seed", .unsigned, help: "Partition seed.", \.partitionSeed),
            Setting("ipc", .integer, help: "Override the round's images per class.", \.imagesPerClass),
            Setting("iterations", .integer, help: "Override the round's DM iterations.", \.iterations),
            Setting("width", .integer, help: "ConvNet width.", \.width),
            Setting("seed", .unsigned, help: "Random seed.", \.seed),
            Setting("state_dir", .string, help: "Where the node report is written.", \.stateDirectory),
            Setting("max_attempts", flag: false, .integer, in: 1...Int.max, help: "Attempts per call while the coordinator is unavailable.", \.maxAttempts),
            Setting("rounds", .integer, in: 0...Int.max, help: "Rounds to take part in (0: every round until stopped); between rounds the node waits for the next.",
                    \.rounds),
            Setting("poll_seconds", flag: false, .number, in: 0.05...3600, help: "Between rounds, how often to ask the coordinator whether a round is open.",
                    \.pollSeconds),
            Setting("privacy_gate", .boolean, help: "Audit the set before sending and refuse to send if it leaks (true/false).",
                    \.privacyGate),
            Setting("max_tpr_at_1pct_fpr", .number, in: 0...1, help: "Privacy gate: largest TPR at 1% FPR allowed for any attack (applied from 500 held-out records).",
                    \.maxTPRAt1PercentFPR),
            Setting("privacy_gate_alpha", .number, in: 0.0001...0.5, help: "Privacy gate: the chance it refuses a set that leaks nothing (family-wise over its tests; default 0.005).",
                    \.privacyGateAlpha),
            Setting("dp_epsilon", .numberOrOff,
                    help: "Distill with differential privacy (DP-DM, a private statistics bank) at this ε, or off (default \(NodeConfiguration.defaultDPEpsilon)).") {
                configuration, value in
                configuration.dpEpsilon = value
                return nil
            },
            Setting("min_records_per_class", .integer, in: 0...Int.max,
                    help: "Share only classes with at least this many records to distill from; with none, refuse to start (default \(NodeConfiguration.defaultMinRecordsPerClass); 0: every class).",
                    \.minRecordsPerClass),
            Setting("dp_delta", .number, help: "δ of the DP guarantee (default 1e-5).", \.dpDelta),
        ])
    }

    /// The configuration the table resolves to; an ε/δ pair the accountant cannot serve is refused here.
    init(flags: [String: String?], configFile: String?,
         environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.init()
        try Self.settingsTable.resolve(into: &self, flags: flags, configFile: configFile, environment: environment)
        if let dpEpsilon, let problem = PrivacyBudget(epsilon: dpEpsilon, delta: dpDelta).problem {
            throw CommandFailure("dp_epsilon/dp_delta: \(problem)")
        }
    }
}
