import Coordinator
import Distill
import FederationProtocol
import Foundation
import Logging
import Node
import Synchronization

/// `bench --federation`: one coordinator process and N lightweight protocol clients in this process (real mutual TLS,
/// one connection and one node identity each, real sealed envelopes of a digits set of `--ipc` images per class, no
/// distillation). Optionally SIGKILLs and restarts the coordinator while submissions arrive. Reports joins/s, submit
/// latency, the coordinator's peak RSS and open files, and checks that every receipted submission is in its database
/// and that every node received the result.
extension BenchCommand {
    func runFederation() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-load-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let certs = root + "/certs"
        let nodeIDs = (0..<nodes).map { String(format: "node-%04d", $0) }
        let start = Date()
        try provisionLocalFederation(in: certs, caName: "load-test CA", nodes: nodeIDs)
        let provisioned = Date().timeIntervalSince(start)
        if !json { print(String(format: "provisioned a CA, a coordinator and %d nodes in %.1f s", nodes, provisioned)) }

        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let incarnation = Shared(0)
        let (ipc, nodes, maxAttempts, killCount) = (self.ipc, self.nodes, self.maxAttempts, self.kills)
        @Sendable func coordinatorProcess(port: Int) -> ChildProcess {
            let index = incarnation.withLock { value in value += 1; return value }
            // A small merge and evaluation: the load is the protocol, not the numerics.
            return ChildProcess(executable: executable, arguments: [
                "coordinator", "--port", "\(port)", "--state-dir", root + "/coordinator", "--credentials-dir", certs,
                "--nodes", nodeIDs.joined(separator: ","), "--quorum", "\(nodes)", "--dataset", "digits", "--ipc", "\(ipc)",
                "--node-iterations", "0", "--merge-iterations", "5", "--width", "16", "--eval-models", "1", "--eval-epochs", "2",
                "--deadline-seconds", "3600",
            ], log: root + "/coordinator-\(index).log")
        }
        let first = coordinatorProcess(port: 0)
        try first.start()
        guard let port = first.waitForLine(prefix: "listening on ").flatMap({ Int($0.split(separator: ":").last ?? "") }) else {
            first.terminate()
            throw CommandFailure("the coordinator did not start; see its log:\n" + first.logTail())
        }
        let coordinator = Shared(first)
        let peak = Shared((rssKiB: 0, files: 0))
        let sampling = AtomicFlag(true)
        // Peak RSS (VmHWM, per incarnation) and open descriptors of the coordinator, sampled every 100 ms.
        let sampler = Thread {
            while sampling.value.load(ordering: .relaxed) {
                let pid = coordinator.withLock { $0.pid }
                let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
                let hwm = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
                    .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
                let files = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
                peak.withLock { $0 = (max($0.rssKiB, hwm), max($0.files, files)) }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        sampler.start()

        let logger = {
            var logger = Logger(label: "feddistill.bench")
            logger.logLevel = .warning
            return logger
        }()
        let receipts = AtomicCounter()
        let clientsStart = ContinuousClock.now
        let (outcomes, killTimes): ([LoadClient.Outcome], [Double]) = await withTaskGroup(of: Void.self) { group in
            let collected = Shared([LoadClient.Outcome]())
            let kills = Shared([Double]())
            for (index, node) in nodeIDs.enumerated() {
                let client = LoadClient(nodeID: node, host: "127.0.0.1", port: port, credentialsDirectory: certs,
                                        descriptor: DatasetCatalog.digits, imagesPerClass: ipc, seed: UInt64(index),
                                        retry: RetryPolicy(maxAttempts: maxAttempts))
                group.addTask {
                    let outcome = await client.run(logger: logger) { receipts.value.add(1, ordering: .relaxed) }
                    collected.withLock { $0.append(outcome) }
                }
            }
            if killCount > 0 {
                let total = killCount
                let count = nodes
                group.addTask {
                    for k in 1...total {
                        // Kill at evenly spaced fractions of the receipts, while uploads are in flight.
                        while receipts.value.load(ordering: .relaxed) < k * count / (total + 1) {
                            try? await Task.sleep(for: .milliseconds(20))
                        }
                        let victim = coordinator.withLock { $0 }
                        victim.signal(SIGKILL)
                        while victim.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
                        kills.withLock { $0.append((ContinuousClock.now - clientsStart).inSeconds) }
                        let next = coordinatorProcess(port: port)
                        do { try next.start() } catch { continue }
                        coordinator.withLock { $0 = next }
                        _ = next.waitForLine(prefix: "listening on ")
                    }
                }
            }
            await group.waitForAll()
            return (collected.withLock { $0 }, kills.withLock { $0 })
        }
        let clientsSeconds = (ContinuousClock.now - clientsStart).inSeconds
        let last = coordinator.withLock { $0 }
        last.waitOrTerminate(seconds: 120)
        sampling.value.store(false, ordering: .relaxed)

        // Every receipt must name a stored envelope.
        let database = try CoordinatorDatabase(stateDirectory: root + "/coordinator")
        let stored = Dictionary(uniqueKeysWithValues: try database.records(round: 1).map { ($0.nodeID, $0.digestHex) })
        let receipted = outcomes.filter { $0.receiptDigest != nil }
        let lost = receipted.filter { outcome in
            stored[outcome.nodeID] != outcome.receiptDigest!.map { String(format: "%02x", $0) }.joined()
        }
        let roundState = try database.round(id: 1)?.state
        func percentile(_ values: [Double], _ p: Double) -> Double {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return .nan }
            // Nearest rank.
            let rank = Int((p * Double(sorted.count)).rounded(.up))
            return sorted[min(sorted.count, max(rank, 1)) - 1]
        }
        let joins = outcomes.compactMap(\.joinSeconds)
        let submits = outcomes.compactMap(\.submitSeconds)
        let failures = outcomes.compactMap(\.failure)
        let results = outcomes.filter(\.resultReceived).count
        let (rssKiB, files) = peak.withLock { $0 }
        let report: [String: Any] = [
            "nodes": nodes, "ipc": ipc, "envelope_bytes": outcomes.first { $0.envelopeBytes > 0 }?.envelopeBytes ?? 0,
            "provisioning_seconds": provisioned, "clients_seconds": clientsSeconds,
            "joins_per_second": joins.isEmpty ? 0 : Double(joins.count) / (joins.max() ?? 1),
            "join_p50_seconds": percentile(joins, 0.5), "join_p99_seconds": percentile(joins, 0.99),
            "submit_p50_seconds": percentile(submits, 0.5), "submit_p99_seconds": percentile(submits, 0.99),
            "submit_max_seconds": submits.max() ?? .nan,
            "receipts": receipted.count, "stored": stored.count, "lost_receipted": lost.count, "results_received": results,
            "failures": failures.count, "failure_examples": Array(Set(failures.map { String($0.prefix(200)) })).sorted().prefix(3).map { $0 },
            "round_state": roundState?.rawValue ?? "missing", "coordinator_peak_rss_mib": Double(rssKiB) / 1024,
            "coordinator_peak_open_files": files, "kills": killTimes.count, "kill_seconds": killTimes,
            "coordinator_exit_code": last.exitCode,
        ]
        if json {
            try writeJSON(report, to: "-")
        } else {
            print(String(format: "%d nodes, envelopes of %d bytes (digits, IPC %d); clients done in %.1f s", nodes,
                         report["envelope_bytes"] as? Int ?? 0, ipc, clientsSeconds))
            print(String(format: "joins: %.0f/s (p50 %.3f s, p99 %.3f s); submit p50 %.3f s, p99 %.3f s, max %.3f s",
                         report["joins_per_second"] as? Double ?? 0, percentile(joins, 0.5), percentile(joins, 0.99),
                         percentile(submits, 0.5), percentile(submits, 0.99), submits.max() ?? .nan))
            print("receipts \(receipted.count), stored \(stored.count), receipted but lost \(lost.count), results received \(results)/\(nodes), "
                  + "round \(roundState?.rawValue ?? "missing")")
            print(String(format: "coordinator: peak RSS %.0f MiB, peak open files %d, SIGKILLed and restarted %d times",
                         Double(rssKiB) / 1024, files, killTimes.count))
            for failure in report["failure_examples"] as? [String] ?? [] { print("client failure: \(failure)") }
        }
        guard lost.isEmpty, results == nodes, failures.isEmpty, roundState == .finished else {
            throw CommandFailure("the load test failed: \(lost.count) receipted submissions lost, \(results)/\(nodes) results, "
                                 + "\(failures.count) client failures, round \(roundState?.rawValue ?? "missing")")
        }
    }
}

/// An atomic counter that closures can share.
final class AtomicCounter: Sendable {
    let value = Atomic(0)
}

/// An atomic flag that closures can share.
final class AtomicFlag: Sendable {
    let value: Atomic<Bool>
    init(_ initial: Bool) { value = Atomic(initial) }
}

/// A value behind a lock that closures and threads can share.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout sending Value) throws -> sending T) rethrows -> T { try mutex.withLock(body) }
}
