import ArgumentParser
import Distill
import FederationProtocol
import Foundation
import Node
import Synchronization

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate", abstract: "Run federated rounds on this machine: one coordinator and N node processes.",
        discussion: """
            Makes a fresh CA, certificates and keys in a temporary directory, starts `feddistill coordinator` and one \
            `feddistill node` per partition over mutual TLS on 127.0.0.1, shows progress per node, and prints the \
            global accuracy next to the baselines (union of node sets, centralized DM on the pooled data). With \
            --rounds N the same coordinator and nodes run N rounds one after the other (with --refine, each round's \
            nodes start from the previous global set) and a table shows the accuracy of every round. Exits non-zero \
            when a round fails. The nodes keep a node's privacy defaults (DP-DM at ε = \(NodeConfiguration.defaultDPEpsilon), \
            classes with fewer than \(NodeConfiguration.defaultMinRecordsPerClass) records to distill from withheld): a \
            partition with no such class is refused before anything starts. On public data (the embedded digits' training \
            split holds about 144 records per class in all) --dp-epsilon off --min-records-per-class 0 simulates without them.
            """)

    @Option(help: "Number of nodes.") var nodes = 4
    @Option(help: "Dataset.") var dataset = "digits"
    @Option(help: "Partition: iid, dirichlet:ALPHA, shards:K.") var partition = "dirichlet:0.5"
    @Option(help: "Images per class (nodes and global set).") var ipc = 10
    @Option(help: "DM iterations on each node.") var iterations = 200
    @Option(name: .customLong("merge-iterations"), help: "DM iterations of the merge.") var mergeIterations = 200
    @Option(help: "Multi-formation factor of the nodes' sets (1: none; 2: each stored image is 2×2 training images).") var formation = 1
    @Option(help: "ConvNet width.") var width = 128
    @Option(name: .customLong("eval-models"), help: "Models per evaluation.") var evalModels = 3
    @Option(name: .customLong("eval-epochs"), help: "Epochs per evaluation model.") var evalEpochs = 300
    @Flag(name: .customLong("no-centralized-baseline"), help: "Skip the centralized DM baseline.") var noCentralized = false
    @Option(name: .customLong("dp-epsilon"), help: "Nodes distill with differential privacy (DP-DM) at this ε, or off.")
    var dpEpsilon = "\(NodeConfiguration.defaultDPEpsilon)"
    @Option(name: .customLong("min-records-per-class"), help: "Nodes share only classes with at least this many records to distill from (0: every class).")
    var minRecordsPerClass = NodeConfiguration.defaultMinRecordsPerClass
    @Option(help: "Random seed (partitions, distillation).") var seed: UInt64 = 0
    @Option(help: "Rounds the coordinator and the nodes run one after the other (round r: node seeds + r − 1).") var rounds = 1
    @Flag(help: "Multi-round refinement: from the second round on, nodes start from the previous round's global set.") var refine = false
    @Option(help: "Write the global set here (a PNG grid goes beside it).") var out = "simulation-global.safetensors"
    @Option(help: "Write a JSON report to this file (- for stdout).") var json: String?
    @Flag(help: "Keep the temporary directory (certificates, state, logs) for inspection.") var keep = false
    @OptionGroup var data: DataOptions

    func validate() throws {
        guard nodes >= 1, nodes <= 64 else { throw ValidationError("--nodes must be in 1...64") }
        guard PartitionScheme(partition) != nil else { throw ValidationError("--partition must be iid, dirichlet:ALPHA or shards:K") }
        guard (1...100).contains(rounds) else { throw ValidationError("--rounds must be in 1...100") }
        guard ipc > 0, iterations >= 0, mergeIterations >= 0, evalModels > 0, evalEpochs > 0 else {
            throw ValidationError("--ipc, --eval-models and --eval-epochs must be positive, iterations non-negative")
        }
        let descriptor = try DatasetCatalog.descriptor(named: dataset)
        if let problem = MultiFormation.problem(factor: formation, imageShape: descriptor.imageShape) { throw ValidationError("--formation \(problem)") }
        guard let epsilon = numberOrOff(dpEpsilon) else { throw ValidationError("--dp-epsilon must be a number or off, got '\(dpEpsilon)'") }
        if let epsilon, let problem = PrivacyBudget(epsilon: epsilon).problem { throw ValidationError("--dp-epsilon: \(problem)") }
        guard minRecordsPerClass >= 0 else { throw ValidationError("--min-records-per-class must be ≥ 0") }
    }


    /// Every node's configuration as the simulation starts it, checked before any process starts: a node whose
    /// partition holds no class with `minRecordsPerClass` records to distill from would refuse to start.
    func checkPartitions(train: LabeledImages) throws {
        guard let scheme = PartitionScheme(partition) else { return }
        for index in 0..<nodes {
            var node = NodeConfiguration()
            node.nodeID = "node-\(index + 1)"
            (node.partition, node.partitionNodes, node.partitionIndex, node.partitionSeed) = (partition, nodes, index, seed)
            node.seed = seed &+ UInt64(index) &+ 1
            node.minRecordsPerClass = minRecordsPerClass
            do { _ = try NodeRunner.privateRecords(configuration: node, train: train, scheme: scheme) } catch {
                throw CommandFailure("\(error)\nFor a simulation on public data: --dp-epsilon off --min-records-per-class 0.")
            }
        }
    }

    func run() throws {
        if !data.store.isAvailable(dataset) { throw CommandFailure(DatasetError.notFetched(dataset: dataset, directory: data.store.directory)) }
        if minRecordsPerClass > 0 {
            do { try checkPartitions(train: try data.store.load(dataset).train) } catch let failure as CommandFailure { throw failure } catch {
                throw CommandFailure(error)
            }
        }
        let start = Date()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-sim-\(UUID().uuidString)").path
        defer { if !keep { try? FileManager.default.removeItem(atPath: root) } }
        let certs = root + "/certs"
        let nodeIDs = (1...nodes).map { "node-\($0)" }
        try provisionLocalFederation(in: certs, caName: "FedDistill simulation CA", nodes: nodeIDs)
        let provisioned = Date().timeIntervalSince(start)
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let dataArguments = data.dataDirectory.map { ["--data-dir", $0] } ?? []
        let state = Mutex([String: String]())  // node → latest phase
        let coordinator = ChildProcess(executable: executable, arguments: [
            "coordinator", "--port", "0", "--state-dir", root + "/coordinator", "--credentials-dir", certs, "--nodes",
            nodeIDs.joined(separator: ","), "--dataset", dataset, "--ipc", "\(ipc)", "--node-iterations", "\(iterations)",
            "--merge-iterations", "\(mergeIterations)", "--formation-factor", "\(formation)", "--width", "\(width)", "--eval-models", "\(evalModels)",
            "--eval-epochs", "\(evalEpochs)", "--centralized-baseline", noCentralized ? "false" : "true", "--seed", "\(seed)",
            "--quorum", "1", "--rounds", "\(rounds)", "--refine", refine ? "true" : "false",
        ] + dataArguments, log: root + "/coordinator.log")
        let started = ChildProcess.Group()
        // Interrupted (Ctrl-C, SIGTERM): stop the coordinator and every node this simulation started, then exit.
        let stopSignals = ChildProcess.forwardingStop(to: started, removing: keep ? nil : root)
        defer { stopSignals.forEach { $0.cancel() } }
        try coordinator.start()
        started.add(coordinator)
        guard let port = coordinator.waitForLine(prefix: "listening on ").flatMap({ Int($0.split(separator: ":").last ?? "") }) else {
            coordinator.terminate()
            throw CommandFailure("the coordinator did not start; see its log:\n" + coordinator.logTail())
        }
        var children: [ChildProcess] = []
        for (index, node) in nodeIDs.enumerated() {
            let child = ChildProcess(executable: executable, arguments: [
                "node", "--node-id", node, "--coordinator", "127.0.0.1:\(port)", "--credentials-dir", certs, "--dataset", dataset,
                "--partition", partition, "--partition-nodes", "\(nodes)", "--partition-index", "\(index)", "--partition-seed",
                "\(seed)", "--width", "\(width)", "--seed", "\(seed &+ UInt64(index) &+ 1)", "--state-dir", root + "/nodes", "--progress",
                "--threads", "1", "--rounds", "\(rounds)",
                "--dp-epsilon", dpEpsilon, "--min-records-per-class", "\(minRecordsPerClass)",
            ] + dataArguments, log: root + "/\(node).log") { line in
                let fields = line.split(separator: " ")
                if fields.count == 4, fields[0] == "progress" {
                    // The node's own phases, and once it has submitted, the coordinator's (merge, evaluation) as it reports them.
                    let phase = String(fields[1])
                    let shown = phase == "distill" ? "distill \(fields[2])/\(fields[3])"
                        : phase.hasPrefix("coordinator-") ? "coordinator \(phase.dropFirst(12))" + (fields[3] == "0" ? "" : " \(fields[2])/\(fields[3])")
                        : phase
                    state.withLock { $0[node] = shown }
                }
            }
            try child.start()
            children.append(child)
            started.add(child)
        }
        let display = ProgressDisplay(label: "simulate", interval: 10)
        var closeRequested = false
        while coordinator.isRunning {
            for (node, child) in zip(nodeIDs, children) where !child.isRunning && child.exitCode != 0 {
                state.withLock { $0[node] = "failed" }
            }
            let phases = state.withLock { $0 }
            func waiting(_ phase: String) -> Bool {
                ["wait", "done", "failed", "next-round"].contains(phase) || phase.hasPrefix("coordinator ")
            }
            let settled = nodeIDs.allSatisfy { waiting(phases[$0] ?? "") }
            // A node that ended without submitting (privacy gate, crash) would hold the round until its deadline:
            // once every node has either submitted or ended, ask the coordinator to close the round with what it has.
            if !closeRequested && settled && phases.values.contains("failed") {
                closeRequested = true
                coordinator.signal(SIGUSR1)
            }
            let done = phases.values.filter(waiting).count
            display.update(done: done, total: nodes, elapsed: Date().timeIntervalSince(start),
                           fields: nodeIDs.map { ($0, phases[$0] ?? "start") })
            Thread.sleep(forTimeInterval: 0.5)
        }
        for child in children { child.waitOrTerminate(seconds: 30) }
        var results: [[String: Any]] = []
        for round in 1...rounds {
            guard let data = FileManager.default.contents(atPath: root + "/coordinator/result-round-\(round).json"),
                  let result = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { break }
            results.append(result)
        }
        guard coordinator.exitCode == 0, results.count == rounds, let result = results.last else {
            throw CommandFailure("round \(results.count + 1) failed; coordinator log:\n" + coordinator.logTail())
        }
        do {
            try? FileManager.default.removeItem(atPath: out)
            try FileManager.default.copyItem(atPath: root + "/coordinator/global-round-\(rounds).safetensors", toPath: out)
            let png = (out.hasSuffix(".safetensors") ? String(out.dropLast(12)) : out) + ".png"
            try? FileManager.default.removeItem(atPath: png)
            try FileManager.default.copyItem(atPath: root + "/coordinator/global-round-\(rounds).png", toPath: png)
        } catch { throw CommandFailure("cannot write \(out): \(error)") }
        try printReport(result, rounds: results, root: root, provisioned: provisioned, total: Date().timeIntervalSince(start))
    }

    /// The node's own last error line, e.g. why its privacy gate refused to send.
    static func lastErrorLine(_ log: String) -> String? {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").last { $0.hasPrefix("Error: ") }.map { String($0.dropFirst(7)) }
    }

    private func printReport(_ result: [String: Any], rounds results: [[String: Any]], root: String, provisioned: Double,
                             total: Double) throws {
        func accuracy(_ object: Any?) -> String {
            guard let report = object as? [String: Any], let mean = report["accuracy_mean"] as? Double,
                  let std = report["accuracy_std"] as? Double else { return "n/a" }
            return String(format: "%.2f%% ± %.2f%%", 100 * mean, 100 * std)
        }
        let baselines = result["baselines"] as? [String: Any] ?? [:]
        if results.count > 1 {
            print("\nRounds: \(dataset), \(nodes) nodes, \(partition), IPC \(ipc), \(iterations) node iterations"
                  + (refine ? ", refinement (nodes start from the previous global set)" : ", every round from the recipe's initialisation"))
            print("round".padding(7) + "global".padding(18) + "union of node sets".padding(20) + "submitted".padding(11) + "seconds")
            for (index, round) in results.enumerated() {
                let submitted = (round["nodes"] as? [[String: Any]] ?? []).filter { ($0["submitted"] as? Bool) == true }.count
                let seconds = (round["phase_seconds"] as? [String: Double] ?? [:]).values.reduce(0, +)
                print("\(index + 1)".padding(7) + accuracy(round["global"]).padding(18)
                      + accuracy((round["baselines"] as? [String: Any])?["union"]).padding(20) + "\(submitted)/\(nodes)".padding(11)
                      + String(format: "%.0f (coordinator)", seconds))
            }
        }
        print("\nFederated round\(results.count > 1 ? " \(results.count)" : ""): \(dataset), \(nodes) nodes, \(partition), IPC \(ipc), \(iterations) node iterations")
        print("node".padding(10) + "submitted".padding(11) + "images".padding(8) + "bytes sent")
        for node in result["nodes"] as? [[String: Any]] ?? [] {
            let id = String(describing: node["id"] ?? "?")
            let why = (node["submitted"] as? Bool) == true ? "" : "  (" + (Self.lastErrorLine(root + "/\(id).log") ?? "no submission") + ")"
            print(id.padding(10) + ((node["submitted"] as? Bool) == true ? "yes" : "no").padding(11)
                  + String(describing: node["images"] ?? 0).padding(8) + String(describing: node["bytes_sent"] ?? 0) + why)
        }
        print("set".padding(24) + "test accuracy")
        print("global (DM merge)".padding(24) + accuracy(result["global"]))
        print("union of node sets".padding(24) + accuracy(baselines["union"]))
        if !noCentralized { print("centralized DM".padding(24) + accuracy(baselines["centralized_dm"])) }
        let phases = (result["phase_seconds"] as? [String: Double] ?? [:]).sorted { $0.key < $1.key }
            .map { String(format: "%@ %.1f s", $0.key, $0.value) }.joined(separator: ", ")
        print(String(format: "wall time %.1f s (provisioning %.1f s; coordinator: %@); global set → %@", total, provisioned, phases, out))
        if let json {
            var report = result
            report["seconds"] = total
            report["dataset"] = dataset
            report["partition"] = partition
            report["dp_epsilon"] = numberOrOff(dpEpsilon)?.map { $0 as Any } ?? "off"
            report["min_records_per_class"] = minRecordsPerClass
            if results.count > 1 {
                report["rounds"] = results
                report["refine"] = refine
            }
            try writeJSON(report, to: json)
        }
    }
}

/// A fresh CA in `certs` (created 0700) with a coordinator certificate and keys and one certificate and key set per
/// node: what `simulate` and `bench --federation` run on.
func provisionLocalFederation(in certs: String, caName: String, nodes: [String]) throws {
    do {
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let ca = try CertificateAuthority.create(in: certs, commonName: caName)
        try ca.issue(name: "coordinator", role: .coordinator(subjectAlternativeNames: CertificateAuthority.defaultCoordinatorNames))
        try KeyFiles.generate(in: certs, name: "coordinator")
        for node in nodes {
            try ca.issue(name: node, role: .node)
            try KeyFiles.generate(in: certs, name: node)
        }
    } catch { throw CommandFailure("provisioning failed: \(error)") }
}

/// A child process of the simulation: output lines go to a log file and to an optional line handler.
final class ChildProcess: @unchecked Sendable {  // state guarded by `lines`
    private let process = Process()
    private let logPath: String
    private let lines = Mutex<[String]>([])
    private let onLine: (@Sendable (String) -> Void)?
    private let newLine = NSCondition()

    init(executable: String, arguments: [String], log: String, onLine: (@Sendable (String) -> Void)? = nil) {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        logPath = log
        self.onLine = onLine
    }

    func start() throws {
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = log
        let pending = Mutex(Data())
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let chunk = handle.availableData
            guard let self, !chunk.isEmpty else { return }
            log.write(chunk)
            let complete: [String] = pending.withLock { buffer in
                buffer.append(chunk)
                var found: [String] = []
                while let newline = buffer.firstIndex(of: 10) {
                    found.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
                    buffer = Data(buffer[(newline + 1)...])
                }
                return found
            }
            for line in complete {
                self.lines.withLock { $0.append(line) }
                self.onLine?(line)
            }
            if !complete.isEmpty { self.newLine.broadcast() }
        }
        do { try process.run() } catch { throw CommandFailure("cannot start \(process.executableURL?.path ?? "?"): \(error)") }
    }

    /// Waits (up to 60 s) for a stdout line starting with `prefix`; returns the rest of the line.
    func waitForLine(prefix: String) -> String? {
        let deadline = Date().addingTimeInterval(60)
        newLine.lock()
        defer { newLine.unlock() }
        while Date() < deadline {
            if let line = lines.withLock({ $0.first { $0.hasPrefix(prefix) } }) { return String(line.dropFirst(prefix.count)) }
            if !process.isRunning { return nil }
            _ = newLine.wait(until: min(deadline, Date().addingTimeInterval(0.5)))
        }
        return nil
    }

    /// Processes started together, stopped together.
    final class Group: Sendable {
        let members = Mutex<[ChildProcess]>([])
        func add(_ child: ChildProcess) { members.withLock { $0.append(child) } }
    }

    /// Until cancelled, SIGINT and SIGTERM terminate every process in `children` (and remove `directory`, the
    /// simulation's temporary files) before this process exits with 128 + the signal.
    static func forwardingStop(to children: Group, removing directory: String?) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            _ = Glibc.signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let all = children.members.withLock { $0 }
                for child in all { child.terminate() }
                for child in all { child.waitOrTerminate(seconds: 5) }
                if let directory { try? FileManager.default.removeItem(atPath: directory) }
                exit(128 + number)
            }
            source.resume()
            return source
        }
    }

    var isRunning: Bool { process.isRunning }
    /// The process id (valid once started).
    var pid: Int32 { process.processIdentifier }
    var exitCode: Int32 { process.isRunning ? -1 : process.terminationStatus }
    func terminate() { if process.isRunning { process.terminate() } }
    func signal(_ number: Int32) { if process.isRunning { kill(process.processIdentifier, number) } }

    func waitOrTerminate(seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        terminate()
    }

    func logTail() -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(15).joined(separator: "\n")
    }
}
