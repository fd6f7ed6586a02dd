import Coordinator
import Foundation
import Testing

/// Faults with real processes: the `feddistill` binary as coordinator and nodes over mutual TLS on 127.0.0.1,
/// killed with SIGKILL at chosen moments. Tiny settings (digits, width 8, a few iterations) keep each run short;
/// the waits are on the processes' own output and exits, never on a clock.
@Suite("Fault tolerance (processes)", .serialized, .tags(.endToEnd))
struct FaultToleranceTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-faults-\(UUID().uuidString)").path
    var certs: String { root + "/certs" }
    var state: String { root + "/coordinator" }

    func run(_ arguments: [String]) async throws {
        let child = try ChildProcess(arguments.first ?? "", arguments)
        let status = await child.waitForExit()
        #expect(status == 0, "\(arguments.joined(separator: " ")):\n\(child.output)")
    }

    func provision(_ nodes: [String]) async throws {
        try await run(["certs", "init", "--dir", certs])
        try await run(["certs", "issue", "--dir", certs, "--role", "coordinator", "--name", "coordinator"])
        try await run(["keys", "generate", "--dir", certs, "--name", "coordinator"])
        for node in nodes {
            try await run(["certs", "issue", "--dir", certs, "--role", "node", "--name", node])
            try await run(["keys", "generate", "--dir", certs, "--name", node])
        }
    }

    func coordinator(nodes: [String], quorum: Int, deadline: Int, port: Int = 0, extra: [String] = []) throws -> ChildProcess {
        try ChildProcess("coordinator", [
            "coordinator", "--port", "\(port)", "--state-dir", state, "--credentials-dir", certs,
            "--nodes", nodes.joined(separator: ","), "--quorum", "\(quorum)", "--deadline-seconds", "\(deadline)",
            "--ipc", "2", "--node-iterations", "3", "--global-ipc", "2", "--merge-iterations", "3", "--width", "8",
            "--eval-models", "1", "--eval-epochs", "3",
        ] + extra)
    }

    func node(_ id: String, index: Int, of count: Int, port: Int, extra: [String] = []) throws -> ChildProcess {
        try ChildProcess(id, [
            "node", "--node-id", id, "--coordinator", "127.0.0.1:\(port)", "--credentials-dir", certs,
            "--partition", "iid", "--partition-nodes", "\(count)", "--partition-index", "\(index)", "--width", "8",
            "--seed", "\(index)", "--state-dir", root + "/nodes", "--progress",
            // The subject here is fault handling. The privacy gate may rightly refuse a set distilled from a partition
            // this small (see docs/privacy.md), which would change the quorum arithmetic; it has its own tests.
            "--privacy-gate", "false",
            // Digits partitions hold a few dozen records per class: below a node's default minimum, and too small
            // for its default DP budget to leave a usable set.
            "--dp-epsilon", "off", "--min-records-per-class", "0",
        ] + extra, environment: ["FEDDISTILL_THREADS": "1"])
    }

    func port(of coordinator: ChildProcess) async throws -> Int {
        let match = try await coordinator.waitFor(#"listening on [^\s:]+:(\d+)\n"#)
        return try #require(Int(match[1]))
    }

    func result(round: UInt64 = 1) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: state + "/result-round-\(round).json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func submitted(_ result: [String: Any]) -> [String] {
        ((result["nodes"] as? [[String: Any]]) ?? []).filter { $0["submitted"] as? Bool == true }.compactMap { $0["id"] as? String }.sorted()
    }

    @Test(.timeLimit(.minutes(3))) func aNodeKilledMidDistillationLeavesTheRoundToTheOthers() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nodes = ["node-a", "node-b", "node-c"]
        try await provision(nodes)
        // An impostor: a certificate for "node-a" from a CA the federation does not trust, and the right CA to trust.
        let foreign = root + "/foreign"
        try await run(["certs", "init", "--dir", foreign])
        try await run(["certs", "issue", "--dir", foreign, "--role", "node", "--name", "node-a"])
        try await run(["keys", "generate", "--dir", foreign, "--name", "node-a"])
        try FileManager.default.removeItem(atPath: foreign + "/ca.pem")
        try FileManager.default.copyItem(atPath: certs + "/ca.pem", toPath: foreign + "/ca.pem")
        let server = try coordinator(nodes: nodes, quorum: 2, deadline: 15)
        let port = try await port(of: server)
        let impostor = try ChildProcess("impostor", [
            "node", "--node-id", "node-a", "--coordinator", "127.0.0.1:\(port)", "--credentials-dir", foreign,
            "--width", "8", "--privacy-gate", "false", "--dp-epsilon", "off", "--min-records-per-class", "0",
        ], environment: ["FEDDISTILL_NODE_MAX_ATTEMPTS": "1"])
        #expect(await impostor.waitForExit() != 0, "\(impostor.output)")
        // node-c is asked for far more iterations than it will live through.
        let doomed = try node("node-c", index: 2, of: 3, port: port, extra: ["--iterations", "1000000"])
        try await doomed.waitFor(#"progress distill \d+ 1000000\n"#)
        doomed.kill()
        #expect(await doomed.waitForExit() != 0)
        let survivors = try [node("node-a", index: 0, of: 3, port: port), node("node-b", index: 1, of: 3, port: port)]
        // The round closes at the deadline with the quorum and the survivors receive the result.
        #expect(await server.waitForExit() == 0, "\(server.output)")
        for survivor in survivors {
            #expect(await survivor.waitForExit() == 0, "\(survivor.output)")
            #expect(survivor.output.contains("global accuracy "), "\(survivor.name) received the result")
        }
        #expect(submitted(try result()) == ["node-a", "node-b"])
    }

    @Test(.timeLimit(.minutes(3))) func aRestartedCoordinatorKeepsReceiptedSubmissionsAndCompletesTheRound() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nodes = ["node-a", "node-b"]
        try await provision(nodes)
        let first = try coordinator(nodes: nodes, quorum: 2, deadline: 600)
        let port = try await port(of: first)
        let early = try node("node-a", index: 0, of: 2, port: port)
        try await early.waitFor(#"progress wait "#)  // node-a holds its receipt
        first.kill()
        _ = await first.waitForExit()
        // The receipted submission is in the database the crashed coordinator left behind.
        #expect(try CoordinatorDatabase(stateDirectory: state).records(round: 1).map(\.nodeID) == ["node-a"])
        // Restart on the same port once node-a is well into its backoff: its watch reconnects (the coordinator lingers
        // after the result until every submitter has it) and the round goes on.
        try await early.waitFor(#"attempt=4 "#)
        let second = try coordinator(nodes: nodes, quorum: 2, deadline: 600, port: port)
        _ = try await self.port(of: second)
        let late = try node("node-b", index: 1, of: 2, port: port)
        #expect(await second.waitForExit() == 0, "\(second.output)")
        #expect(second.output.contains("resuming stored submission"))
        #expect(await late.waitForExit() == 0, "\(late.output)")
        #expect(await early.waitForExit() == 0, "\(early.output)")
        #expect(early.output.contains("global accuracy "), "node-a received the result after the restart")
        #expect(!second.output.contains("exiting before some nodes received the result"))
        #expect(submitted(try result()) == nodes)
        let database = try CoordinatorDatabase(stateDirectory: state)
        #expect(try database.records(round: 1).count == 2, "each node stored once")
        #expect(try database.round(id: 1)?.state == .finished)
        // Starting the finished round again is refused with a clear message, and changes nothing.
        let third = try coordinator(nodes: nodes, quorum: 2, deadline: 600)
        #expect(await third.waitForExit() != 0)
        #expect(third.output.contains("already finished"))
    }

    /// A three-round schedule with the same two long-lived node processes; the coordinator is killed (SIGKILL)
    /// between rounds 1 and 2 and again during round 2, after both nodes submitted, and each restart resumes: the
    /// next round opens (not round 1 again), the stored submissions of round 2 are merged, and round 3 follows.
    /// A third registered node never comes, so a round stays open after two submissions until SIGUSR1 closes it
    /// with the quorum: the kill during round 2 lands in an open round, not a race with its end.
    @Test(.timeLimit(.minutes(4))) func aScheduleResumesAfterKillsBetweenAndDuringRounds() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nodes = ["node-a", "node-b", "node-c"]
        try await provision(nodes)
        let first = try coordinator(nodes: nodes, quorum: 2, deadline: 600,
                                    extra: ["--rounds", "3", "--round-interval", "3600"])
        let port = try await port(of: first)
        let long = ["--rounds", "3"]
        let a = try node("node-a", index: 0, of: 3, port: port, extra: long)
        let b = try node("node-b", index: 1, of: 3, port: port, extra: long)
        func bothSubmitted(round count: Int) async throws {
            let pattern = "(?s)" + Array(repeating: "progress wait ", count: count).joined(separator: ".*")
            try await a.waitFor(pattern)
            try await b.waitFor(pattern)
        }
        try await bothSubmitted(round: 1)
        first.kill(SIGUSR1)
        try await first.waitFor(#"round 1: global accuracy "#)
        // Between rounds (the next one is an hour away): a crash.
        first.kill()
        _ = await first.waitForExit()
        let database = try CoordinatorDatabase(stateDirectory: state)
        #expect(try database.round(id: 1)?.state == .finished)
        #expect(try database.round(id: 2) == nil)

        // The restart (now with no interval) resumes the schedule at round 2; both node processes take part.
        let second = try coordinator(nodes: nodes, quorum: 2, deadline: 600, port: port, extra: ["--rounds", "3", "--round-interval", "0"])
        _ = try await self.port(of: second)
        try await bothSubmitted(round: 2)
        #expect(try database.records(round: 2).map(\.nodeID).sorted() == ["node-a", "node-b"])
        // During round 2, both sets stored: a crash.
        second.kill()
        _ = await second.waitForExit()
        #expect(try database.round(id: 2)?.state == .open)

        let third = try coordinator(nodes: nodes, quorum: 2, deadline: 600, port: port, extra: ["--rounds", "3", "--round-interval", "0"])
        _ = try await self.port(of: third)
        try await third.waitFor(#"resuming stored submission"#)
        third.kill(SIGUSR1)
        try await third.waitFor(#"round 2: global accuracy "#)
        try await bothSubmitted(round: 3)
        third.kill(SIGUSR1)
        #expect(await third.waitForExit() == 0, "\(third.output)")
        #expect(third.output.contains("round 3: global accuracy "))
        #expect(!third.output.contains("round 1: global accuracy "), "round 1 ran once, before the first crash")
        #expect(await a.waitForExit() == 0, "\(a.output)")
        #expect(await b.waitForExit() == 0, "\(b.output)")
        for round: UInt64 in 1...3 {
            #expect(try database.round(id: round)?.state == .finished, "round \(round)")
            #expect(submitted(try result(round: round)) == ["node-a", "node-b"], "round \(round)")
            #expect(try database.records(round: round).count == 2, "round \(round): each node stored once")
        }
        #expect(try database.rounds().count == 3)
    }
}

extension Tag {
    /// Tests that start real processes and take tens of seconds.
    @Tag static var endToEnd: Self
}
