import Coordinator
import Distill
import FederationProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Node
import Prometheus
import Testing

/// A long-running coordinator in one process: scheduled rounds with the same long-lived node services, the round
/// history, the node table, an operator's `round start`, the dashboard's JSON API and image, and a restart that
/// resumes the schedule.
@Suite("Round schedule", .serialized)
struct RoundScheduleTests {
    let harness = FederatedRoundTests()
    let http = HealthTests()

    func client<T: Sendable>(_ port: Int, as name: String,
                             _ body: @Sendable (Feddistill_V1_Federation.Client<HTTP2ClientTransport.Posix>) async throws -> T) async throws -> T {
        let transport = try FederationTransport.client(host: "127.0.0.1", port: port,
                                                       credentials: TLSCredentials.inDirectory(harness.certs, name: name))
        return try await withGRPCClient(transport: transport) { try await body(Feddistill_V1_Federation.Client(wrapping: $0)) }
    }

    func provisionOperator(_ name: String) throws {
        let ca = try CertificateAuthority.load(from: harness.certs)
        try ca.issue(name: name, role: .operator)
    }

    @Test(.timeLimit(.minutes(4))) func scheduledRoundsRunWithTheSameNodeServicesAndAnOperatorStartsOneMore() async throws {
        defer { try? FileManager.default.removeItem(atPath: harness.root) }
        let nodes = ["node-a", "node-b"]
        try harness.provision(nodes: nodes)
        try provisionOperator("ops")
        let logger = Logger(label: "test")
        var configuration = harness.coordinatorConfiguration(nodes: nodes)
        configuration.rounds = 2
        configuration.roundIntervalSeconds = 0
        configuration.exitAfterRound = false  // after its schedule it serves and waits for an operator
        configuration.dashboardPort = 0
        try await harness.withCoordinator(configuration, logger: logger) { port, dashboard in
            let dashboard = try #require(dashboard)

            // Two long-lived node services take part in both scheduled rounds.
            let reports = try await withThrowingTaskGroup(of: NodeReport.self) { nodesGroup in
                for (index, node) in nodes.enumerated() {
                    var node = harness.nodeConfiguration(node, index: index, port: port)
                    node.rounds = 2
                    node.pollSeconds = 0.1
                    node.privacyGate = false
                    let runner = NodeRunner(configuration: node, logger: logger)
                    nodesGroup.addTask { try await runner.run() }
                }
                return try await nodesGroup.reduce(into: []) { $0.append($1) }
            }
            #expect(reports.map(\.roundID) == [2, 2], "each node's last round is the schedule's second")

            let status = try await client(port, as: "node-a") { try await $0.status(Feddistill_V1_StatusRequest()) }
            #expect(status.history.map(\.roundID) == [2, 1])
            #expect(status.history.allSatisfy { $0.phase == .finished && $0.participants == nodes && $0.accuracyMean > 0 })
            #expect(status.history.allSatisfy { $0.globalSetSha256.count == 64 && $0.configurationJson.contains("\"quorum\":2") })
            #expect(status.history.allSatisfy { $0.gates == ["node-a": "off", "node-b": "off"] })
            #expect(status.nodeTable.map(\.nodeID) == nodes && status.nodeTable.allSatisfy { $0.state == .submitted && $0.envelopeBytes > 0 })
            #expect(status.classCount == 10 && status.confusion.count == 100 && status.confusion.reduce(0, +) > 0)
            #expect(status.progress.step == "waiting-for-operator" && status.scheduledRounds == 2)

            // Without refinement the global set stays with the coordinator.
            let unshared = await #expect(throws: RPCError.self) {
                _ = try await client(port, as: "node-a") { federation in
                    var request = Feddistill_V1_GlobalSetRequest()
                    request.roundID = 1
                    return try await federation.globalSet(request) { try await $0.messages.reduce(0) { $0 + $1.data.count } }
                }
            }
            #expect(unshared?.code == .failedPrecondition)

            // Only an operator certificate starts a round; a node's is refused.
            let refused = await #expect(throws: RPCError.self) {
                _ = try await client(port, as: "node-a") { try await $0.startRound(Feddistill_V1_StartRoundRequest()) }
            }
            #expect(refused?.code == .permissionDenied)
            let started = try await client(port, as: "ops") { try await $0.startRound(Feddistill_V1_StartRoundRequest()) }
            #expect(started.round.roundID == 3)
            let again = await #expect(throws: RPCError.self) {
                _ = try await client(port, as: "ops") { try await $0.startRound(Feddistill_V1_StartRoundRequest()) }
            }
            #expect(again?.code == .failedPrecondition, "one round at a time")
            // The operator certificate is never a node.
            let asNode = await #expect(throws: RPCError.self) {
                _ = try await client(port, as: "ops") { federation in
                    var join = Feddistill_V1_JoinRequest()
                    join.nodeID = "ops"
                    join.protocolVersion = ProtocolVersion.current
                    return try await federation.join(join)
                }
            }
            #expect(asNode?.code == .permissionDenied)

            // The dashboard's API shows the open round, its nodes, and serves the finished rounds' images.
            let api = try await http.get("/api/status", port: dashboard)
            #expect(api.code == 200)
            let document = try #require(try JSONSerialization.jsonObject(with: Data(api.body.utf8)) as? [String: Any])
            #expect(document["current_round_id"] as? Int == 3 && document["phase"] as? String == "ROUND_PHASE_OPEN")
            #expect((document["node_table"] as? [[String: Any]])?.compactMap { $0["node_id"] as? String } == nodes)
            #expect((document["history"] as? [Any])?.count == 3)
            let page = try await http.get("/", port: dashboard)
            #expect(page.code == 200 && page.body.contains("FedDistill coordinator") && !page.body.contains("src=\"http"))
            let image = try await http.get("/api/global.png?round=1", port: dashboard)
            #expect(image.code == 200)
            #expect(try await http.get("/api/global.png?round=9", port: dashboard).code == 404)
            #expect(try await http.get("/api/global.png", port: dashboard).code == 400)

            // Round 3 runs with the nodes started again (one round each) and lands in the history.
            try await withThrowingTaskGroup(of: NodeReport.self) { nodesGroup in
                for (index, node) in nodes.enumerated() {
                    var node = harness.nodeConfiguration(node, index: index, port: port)
                    node.privacyGate = false
                    let runner = NodeRunner(configuration: node, logger: logger)
                    nodesGroup.addTask { try await runner.run() }
                }
                for try await report in nodesGroup { #expect(report.roundID == 3) }
            }
            let after = try await client(port, as: "ops") { try await $0.status(Feddistill_V1_StatusRequest()) }
            #expect(after.history.map(\.roundID) == [3, 2, 1] && after.history.allSatisfy { $0.phase == .finished })
        }
    }

    /// Multi-round refinement: with `refine`, round 2 names round 1's global set (and its SHA-256) and every node
    /// starts from it; the set is served to nodes only, checked against its recorded digest, and a tampered file is
    /// refused rather than served.
    @Test(.timeLimit(.minutes(3))) func refinementStartsRoundTwoFromRoundOnesGlobalSet() async throws {
        defer { try? FileManager.default.removeItem(atPath: harness.root) }
        let nodes = ["node-a", "node-b"]
        try harness.provision(nodes: nodes)
        try provisionOperator("ops")
        var configuration = harness.coordinatorConfiguration(nodes: nodes)
        configuration.rounds = 2
        configuration.roundIntervalSeconds = 0
        configuration.exitAfterRound = false
        configuration.refine = true
        try await harness.withCoordinator(configuration) { [configuration] port, _ in
            try await withThrowingTaskGroup(of: NodeReport.self) { nodesGroup in
                for (index, node) in nodes.enumerated() {
                    var node = harness.nodeConfiguration(node, index: index, port: port)
                    node.rounds = 2
                    node.pollSeconds = 0.1
                    node.partition = "shards:2"  // each node holds a few classes, the global set the union's
                    node.privacyGate = false
                    let runner = NodeRunner(configuration: node, logger: Logger(label: "test"))
                    nodesGroup.addTask { try await runner.run() }
                }
                for try await report in nodesGroup { #expect(report.roundID == 2) }
            }
            // Each round's report, as the node keeps it in its state directory.
            let reports = try nodes.flatMap { node in
                try [1, 2].map { round in
                    try JSONDecoder().decode(NodeReport.self, from: Data(contentsOf: URL(fileURLWithPath: harness.root + "/nodes/\(node)-round-\(round).json")))
                }
            }
            #expect(reports.map(\.roundID).sorted() == [1, 1, 2, 2])
            #expect(reports.filter { $0.roundID == 1 }.allSatisfy { $0.startedFromRound == nil })
            #expect(reports.filter { $0.roundID == 2 }.allSatisfy { $0.startedFromRound == 1 }, "round 2 starts from round 1's set")
            // Each node sends the classes it holds in round 2 as in round 1, not the global set's others.
            var sizes: [String: [Int]] = [:]
            for report in reports { sizes[report.nodeID, default: []].append(report.syntheticImages) }
            #expect(sizes.values.allSatisfy { $0.count == 2 && $0[0] == $0[1] }, "\(sizes)")

            let status = try await client(port, as: "node-a") { try await $0.status(Feddistill_V1_StatusRequest()) }
            let first = try #require(status.history.first { $0.roundID == 1 })
            #expect(try #require(status.history.first { $0.roundID == 2 }).configurationJson.contains("\"refine\":true"))
            func download(_ round: UInt64, as name: String) async throws -> (Data, String) {
                try await client(port, as: name) { federation in
                    var request = Feddistill_V1_GlobalSetRequest()
                    request.roundID = round
                    return try await federation.globalSet(request) { response in
                        var bytes = Data()
                        var digest = ""
                        for try await chunk in response.messages {
                            bytes.append(chunk.data)
                            digest = chunk.sha256
                        }
                        return (bytes, digest)
                    }
                }
            }
            let (bytes, digest) = try await download(1, as: "node-b")
            #expect(digest == first.globalSetSha256 && !bytes.isEmpty)
            let set = try SyntheticSet.decode(Array(bytes), path: "round 1")
            #expect(!set.data.labels.isEmpty && set.data.classCounts().allSatisfy { $0 == 0 || $0 == configuration.globalImagesPerClass })
            for (name, round, code) in [("ops", UInt64(1), RPCError.Code.permissionDenied), ("node-a", 7, .notFound)] {
                let refused = await #expect(throws: RPCError.self) { _ = try await download(round, as: name) }
                #expect(refused?.code == code, "\(name), round \(round)")
            }
            // A global set changed on disk after its round is never served.
            let path = configuration.stateDirectory + "/global-round-1.safetensors"
            var tampered = bytes
            tampered[tampered.count - 1] ^= 0x01
            try tampered.write(to: URL(fileURLWithPath: path))
            let refused = await #expect(throws: RPCError.self) { _ = try await download(1, as: "node-a") }
            #expect(refused?.code == .dataLoss)
        }
    }

    /// Killed between rounds, a restarted coordinator serves the last round until the next opens on schedule; killed
    /// during a round, it resumes that round.
    @Test func aRestartResumesTheSchedule() async throws {
        defer { try? FileManager.default.removeItem(atPath: harness.root) }
        try harness.provision(nodes: ["node-a"])
        var configuration = harness.coordinatorConfiguration(nodes: ["node-a"])
        configuration.rounds = 3
        configuration.roundIntervalSeconds = 600
        do {
            let database = try CoordinatorDatabase(stateDirectory: configuration.stateDirectory)
            _ = try database.openRound(id: 1, now: 1000, deadline: 2000)
            try database.setRoundState(id: 1, state: .finished, resultJSON: "{\"global\":{\"accuracy_mean\":0.5}}", now: 1500)
        }
        let scheduler = try RoundScheduler(configuration: configuration, logger: Logger(label: "test"))
        let served = await scheduler.current
        let servedID = await served.configuration.roundID
        #expect(servedID == 1 && served.concludedBeforeStart)
        #expect(await scheduler.plan == .openAt(Date(timeIntervalSince1970: 2100)), "the interval counts from the stored end")
        let next = try await scheduler.openNextRound(trigger: "test")
        let nextID = await next.configuration.roundID
        let nextRunning = await next.isRunning
        #expect(nextID == 2 && nextRunning)
        #expect(try await scheduler.openNextRound(trigger: "test") === next, "a running round is not replaced")

        // Restarted while round 2 is open: round 2 is resumed, not skipped.
        let restarted = try RoundScheduler(configuration: configuration, logger: Logger(label: "test"))
        #expect(await restarted.current.configuration.roundID == 2)
        #expect(await restarted.current.isRunning)

        // The schedule's last round concluded: exiting after rounds refuses to start (as a one-round coordinator did).
        let database = try CoordinatorDatabase(stateDirectory: configuration.stateDirectory)
        for id: UInt64 in [2, 3] {
            _ = try database.openRound(id: id, now: 3000, deadline: 4000)
            try database.setRoundState(id: id, state: .failed, failure: "test")
        }
        #expect(throws: RoundFailure.self) { _ = try RoundScheduler(configuration: configuration, logger: Logger(label: "test")) }
        configuration.exitAfterRound = false
        let serving = try RoundScheduler(configuration: configuration, logger: Logger(label: "test"))
        let servingID = await serving.current.configuration.roundID
        let plan = await serving.plan
        #expect(servingID == 3 && plan == .onDemand)
    }
}
