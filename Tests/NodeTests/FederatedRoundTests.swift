import Coordinator
import Distill
import FederationProtocol
import Foundation
import GRPCCore
import Logging
import Node
import Testing

/// A whole round in one process: a real coordinator on 127.0.0.1 port 0 with mutual TLS and two nodes holding
/// Dirichlet partitions of digits. Tiny settings keep it fast; what is checked is the path, not the accuracy.
@Suite("Federated round", .serialized)
struct FederatedRoundTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-round-\(UUID().uuidString)").path
    var certs: String { root + "/certs" }

    func provision(nodes: [String], unregistered: [String] = []) throws {
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let ca = try CertificateAuthority.create(in: certs, commonName: "test CA")
        try ca.issue(name: "coordinator", role: .coordinator(subjectAlternativeNames: CertificateAuthority.defaultCoordinatorNames))
        try KeyFiles.generate(in: certs, name: "coordinator")
        for node in nodes + unregistered {
            try ca.issue(name: node, role: .node)
            try KeyFiles.generate(in: certs, name: node)
        }
    }

    func coordinatorConfiguration(nodes: [String]) -> CoordinatorConfiguration {
        var configuration = CoordinatorConfiguration()
        configuration.port = 0
        configuration.stateDirectory = root + "/coordinator"
        configuration.credentialsDirectory = certs
        configuration.expectedNodes = nodes
        configuration.quorum = nodes.count
        configuration.imagesPerClass = 2
        configuration.globalImagesPerClass = 2
        configuration.nodeIterations = 3
        configuration.mergeIterations = 3
        configuration.width = 8
        configuration.evaluationModels = 1
        configuration.evaluationEpochs = 3
        return configuration
    }

    func nodeConfiguration(_ node: String, index: Int, port: Int) -> NodeConfiguration {
        var configuration = NodeConfiguration()
        configuration.nodeID = node
        configuration.coordinatorPort = port
        configuration.credentialsDirectory = certs
        configuration.partition = "dirichlet:0.5"
        configuration.partitionNodes = 2
        configuration.partitionIndex = index
        configuration.width = 8
        configuration.stateDirectory = root + "/nodes"
        configuration.seed = UInt64(index)
        return configuration
    }

    @Test(.timeLimit(.minutes(2))) func nodesSubmitSealedSetsAndReceiveTheGlobalResult() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nodes = ["node-a", "node-b"]
        try provision(nodes: nodes, unregistered: ["intruder"])
        let logger = Logger(label: "test")
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let configuration = coordinatorConfiguration(nodes: nodes)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let result = try await CoordinatorServer.run(configuration: configuration, logger: logger) { portContinuation.yield($0) }
                #expect(result.nodes.filter(\.submitted).map(\.id).sorted() == nodes)
                #expect(result.global.accuracies.count == 1)
                #expect(result.baselines["union"] != nil)
            }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            // A node with a valid certificate from the federation CA that is not registered is refused.
            var intruder = nodeConfiguration("intruder", index: 0, port: port)
            intruder.maxAttempts = 1
            await #expect(throws: RPCError.self) {
                _ = try await NodeRunner(configuration: intruder, logger: logger).run()
            }
            let reports = try await withThrowingTaskGroup(of: NodeReport.self) { nodesGroup in
                for (index, node) in nodes.enumerated() {
                    let runner = NodeRunner(configuration: nodeConfiguration(node, index: index, port: port), logger: logger)
                    nodesGroup.addTask { try await runner.run() }
                }
                return try await nodesGroup.reduce(into: []) { $0.append($1) }
            }
            #expect(reports.count == 2)
            for report in reports {
                #expect(report.bytesSent > 0 && report.syntheticImages > 0)
                #expect(report.globalAccuracyMean != nil, "every node receives the final result")
            }
            try await group.waitForAll()
        }
        // Stored envelopes stay sealed at rest: no safetensors header or tensor names in the clear.
        let stored = try SubmissionStore(directory: root + "/coordinator/submissions")
        for node in nodes {
            let bytes = try stored.envelope(round: 1, node: node)
            #expect(bytes.starts(with: SealedEnvelope.magic))
            #expect(bytes.firstRange(of: Array("__metadata__".utf8)) == nil)
            #expect(bytes.firstRange(of: Array("images".utf8)) == nil)
        }
        let global = try SyntheticSet.read(root + "/coordinator/global-round-1.safetensors")
        #expect(global.data.classCounts().allSatisfy { $0 == 0 || $0 == 2 }, "two global images per class present")
    }

    @Test(.timeLimit(.minutes(2))) func privacyGateBlocksALeakySetAndNothingIsSent() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try provision(nodes: ["node-a"])
        let logger = Logger(label: "test")
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let configuration = coordinatorConfiguration(nodes: ["node-a"])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                _ = try await CoordinatorServer.run(configuration: configuration, logger: logger) { portContinuation.yield($0) }
            }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            var node = nodeConfiguration("node-a", index: 0, port: port)
            node.maxTPRAt1PercentFPR = -1  // a policy no set can meet: the gate must refuse to send
            do {
                _ = try await NodeRunner(configuration: node, logger: logger).run()
                Issue.record("the privacy gate let the set through")
            } catch let error as NodeError {
                #expect(error.description.contains("privacy gate"))
            }
            let stored = try SubmissionStore(directory: root + "/coordinator/submissions")
            #expect(try stored.records(round: 1).isEmpty, "nothing reached the coordinator")
            group.cancelAll()
        }
    }
}
