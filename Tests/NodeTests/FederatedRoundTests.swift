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
        // Digits partitions: a few dozen records per class, below the default minimum and its DP budget's reach.
        configuration.dpEpsilon = nil
        configuration.minRecordsPerClass = 0
        return configuration
    }

    @Test(.timeLimit(.minutes(2))) func nodesSubmitSealedSetsAndReceiveTheGlobalResult() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nodes = ["node-a", "node-b"]
        try provision(nodes: nodes, unregistered: ["intruder"])
        let logger = Logger(label: "test")
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let configuration = coordinatorConfiguration(nodes: nodes)
        let registry = PrometheusCollectorRegistry()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let result = try await CoordinatorServer.run(configuration: configuration, logger: logger, metricsRegistry: registry,
                                                             shutdownSignals: []) { portContinuation.yield($0) }
                // The round's metrics reach the registry the metrics endpoint serves, with the final values.
                let metrics = registry.emitToString()
                #expect(metrics.contains("feddistill_global_accuracy \(result.global.mean)\n"))
                #expect(metrics.contains("feddistill_round_state 2.0\n"), "finished")
                #expect(metrics.contains("feddistill_submissions_total{outcome=\"stored\"} 2\n"))
                #expect(metrics.contains("feddistill_round_submissions 2.0\n"))
                #expect(metrics.contains("feddistill_round_phase_seconds{phase=\"merge\"}"))
                #expect(result.nodes.filter(\.submitted).map(\.id).sorted() == nodes)
                #expect(result.global.accuracies.count == 1)
                #expect(result.baselines["union"] != nil)
                let dp = result.nodes.first { $0.id == "node-b" }?.differentialPrivacy
                #expect(dp.map { $0.epsilon <= 4 && $0.epsilon > 3.9 } == true, "node-b's set carries its DP guarantee")
                #expect(result.nodes.first { $0.id == "node-a" }?.differentialPrivacy == nil)
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
                    var configuration = nodeConfiguration(node, index: index, port: port)
                    if node == "node-b" { configuration.dpEpsilon = 4 }  // DP-DM on one node
                    let runner = NodeRunner(configuration: configuration, logger: logger)
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
        let stored = try CoordinatorDatabase(stateDirectory: root + "/coordinator")
        #expect(try stored.round(id: 1)?.state == .finished)
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
        // A round that asks for 30 of the node's own records per class, shared as they are: the gate must refuse.
        var leaky = coordinatorConfiguration(nodes: ["node-a"])
        leaky.method = "random"
        leaky.imagesPerClass = 30
        let configuration = leaky
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                _ = try await CoordinatorServer.run(configuration: configuration, logger: logger, shutdownSignals: []) { portContinuation.yield($0) }
            }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let node = nodeConfiguration("node-a", index: 0, port: port)
            do {
                _ = try await NodeRunner(configuration: node, logger: logger).run()
                Issue.record("the privacy gate let the set through")
            } catch let error as NodeError {
                #expect(error.description.contains("privacy gate"))
            }
            let stored = try CoordinatorDatabase(stateDirectory: root + "/coordinator")
            #expect(try stored.records(round: 1).isEmpty, "nothing reached the coordinator")
            group.cancelAll()
        }
    }

    /// A node at its default DP budget cannot run a round of another method (DP covers dm only): it declines the round
    /// with the reason, and the coordinator stops waiting for it (the round closes long before its 30-minute deadline).
    @Test(.timeLimit(.minutes(2))) func aNodeThatCannotRunTheRecipeDeclinesTheRound() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try provision(nodes: ["node-a"])
        let logger = Logger(label: "test")
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        var herding = coordinatorConfiguration(nodes: ["node-a"])
        herding.method = "herding"
        let configuration = herding
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                _ = try? await CoordinatorServer.run(configuration: configuration, logger: logger, shutdownSignals: []) { portContinuation.yield($0) }
            }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            var node = nodeConfiguration("node-a", index: 0, port: port)
            node.dpEpsilon = NodeConfiguration.defaultDPEpsilon
            do {
                _ = try await NodeRunner(configuration: node, logger: logger).run()
                Issue.record("a DP node ran a herding round")
            } catch let error as NodeError {
                #expect(error.description.contains("recipe:") && error.description.contains("dm only"), "\(error)")
            }
            // The coordinator ends the round (and, exiting after it, returns) without waiting for the deadline.
            try await group.next()
            let stored = try CoordinatorDatabase(stateDirectory: root + "/coordinator")
            #expect(try stored.records(round: 1).isEmpty, "nothing reached the coordinator")
            let entry = try #require(try stored.nodes(inRound: 1)["node-a"])
            #expect(entry.state == .declined && entry.gate.isEmpty && entry.detail.hasPrefix("recipe:"), "\(entry)")
        }
    }

    /// A node that lost its receipt sends the same bytes again and is stored once; a different envelope from the same
    /// node is refused; a revoked node is refused at join, submit and status; the round is unaffected throughout.
    @Test(.timeLimit(.minutes(2))) func resubmissionIsIdempotentAndARevokedNodeIsRefused() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nodes = ["node-a", "node-b"]
        try provision(nodes: nodes)
        let fingerprint = try RevocationList.revoke(name: "node-b", inDirectory: certs)
        #expect(try RevocationList.load(fromDirectory: certs).fingerprints == [fingerprint])
        let logger = Logger(label: "test")
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let configuration = {
            var configuration = coordinatorConfiguration(nodes: nodes)
            configuration.quorum = 1
            return configuration
        }()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                _ = try await CoordinatorServer.run(configuration: configuration, logger: logger, shutdownSignals: []) {
                    portContinuation.yield($0)
                }
            }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            func connect<T: Sendable>(_ node: String,
                                      _ body: @Sendable (Feddistill_V1_Federation.Client<HTTP2ClientTransport.Posix>) async throws -> T)
                async throws -> T {
                let transport = try FederationTransport.client(host: "127.0.0.1", port: port,
                                                               credentials: TLSCredentials.inDirectory(certs, name: node))
                return try await withGRPCClient(transport: transport) { try await body(Feddistill_V1_Federation.Client(wrapping: $0)) }
            }
            @Sendable func join(_ node: String) -> Feddistill_V1_JoinRequest {
                var request = Feddistill_V1_JoinRequest()
                request.nodeID = node
                request.protocolVersion = ProtocolVersion.current
                request.capabilities = ["dm"]
                return request
            }
            // A tiny valid digits set, sealed twice with different nonces.
            var rng = RandomSource(seed: 3)
            let descriptor = try DatasetCatalog.descriptor(named: "digits")
            let data = LabeledImages(images: Tensor.normal([10, 1, 8, 8], using: &rng), labels: Array(0..<10), classCount: 10)
            let set = SyntheticSet(data: data, metadata: .init(
                dataset: "digits", imageShape: descriptor.imageShape, classCount: 10, normalization: descriptor.normalization,
                method: "dm", imagesPerClass: 1, iterations: 0, initialization: "noise", seed: 3,
                sourceClassCounts: Array(repeating: 5, count: 10)))
            let signer = try KeyFiles.readSigningKeys(KeyFiles.paths(in: certs, name: "node-a").signingKey)
            let joined = try await connect("node-a") { try await $0.join(join("node-a")) }
            let recipient = try SealingPublicKey(rawRepresentation: Array(joined.sealingPublicKey))
            func seal() throws -> [UInt8] {
                try SealedEnvelope.seal(payload: set.encoded(), recipient: recipient, signer: signer,
                                        header: EnvelopeHeader(federationID: joined.round.federationID, roundID: 1, nodeID: "node-a"))
                    .serialized()
            }
            let envelope = try seal()
            let metadata = {
                var metadata = SubmitMetadata()
                metadata.roundID = 1
                metadata.nodeID = "node-a"
                return metadata
            }()
            let first = try await connect("node-a") { try await $0.submitEnvelope(envelope, metadata: metadata) }
            let again = try await connect("node-a") { try await $0.submitEnvelope(envelope, metadata: metadata) }
            #expect(again.envelopeDigest == first.envelopeDigest && again.storedAtUnixSeconds == first.storedAtUnixSeconds)
            let other = try seal()
            let conflict = await #expect(throws: RPCError.self) {
                _ = try await connect("node-a") { try await $0.submitEnvelope(other, metadata: metadata) }
            }
            #expect(conflict?.code == .alreadyExists, "one set per node and round, refused before the envelope is opened")
            // The revoked node: valid certificate from the federation CA, registered, but refused.
            do {
                _ = try await connect("node-b") { try await $0.join(join("node-b")) }
                Issue.record("a revoked node joined")
            } catch let error as RPCError {
                #expect(error.code == .permissionDenied && error.message.contains("revoked"))
            }
            let revokedMetadata = {
                var revoked = metadata
                revoked.nodeID = "node-b"
                return revoked
            }()
            await #expect(throws: RPCError.self) {
                _ = try await connect("node-b") { try await $0.submitEnvelope(envelope, metadata: revokedMetadata) }
            }
            await #expect(throws: RPCError.self, "a revoked certificate cannot read the status either") {
                _ = try await connect("node-b") { try await $0.status(Feddistill_V1_StatusRequest()) }
            }
            let status = try await connect("node-a") { try await $0.status(Feddistill_V1_StatusRequest()) }
            #expect(status.submissions == 1 && status.nodes == 1, "one stored submission, one joined node")
            let database = try CoordinatorDatabase(stateDirectory: root + "/coordinator")
            #expect(try database.records(round: 1).map(\.nodeID) == ["node-a"])
            #expect(try database.envelope(round: 1, node: "node-a") == envelope)
            #expect(try database.round(id: 1)?.state == .open, "the round goes on")
            group.cancelAll()
        }
    }

    /// A registered node that turns hostile sends sealed, signed sets built to crash the coordinator or to block the
    /// result: each is refused with `invalidArgument` and a reason, nothing is stored, and the round completes for the
    /// honest node once the same node sends a valid set.
    @Test(.timeLimit(.minutes(3))) func aHostileRegisteredNodeCannotStopTheRound() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nodes = ["node-a", "node-b"]
        try provision(nodes: nodes)
        let logger = Logger(label: "test")
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let configuration = coordinatorConfiguration(nodes: nodes)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                _ = try await CoordinatorServer.run(configuration: configuration, logger: logger) { portContinuation.yield($0) }
            }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let transport = try FederationTransport.client(host: "127.0.0.1", port: port,
                                                           credentials: TLSCredentials.inDirectory(certs, name: "node-a"))
            try await withGRPCClient(transport: transport) { client in
                let federation = Feddistill_V1_Federation.Client(wrapping: client)
                var join = Feddistill_V1_JoinRequest()
                join.nodeID = "node-a"
                join.protocolVersion = ProtocolVersion.current
                join.capabilities = ["dm"]
                let joined = try await federation.join(join)
                let recipient = try SealingPublicKey(rawRepresentation: Array(joined.sealingPublicKey))
                let signer = try KeyFiles.readSigningKeys(KeyFiles.paths(in: certs, name: "node-a").signingKey)
                func submit(_ payload: [UInt8], unsignedAudit: String = "") async throws -> Receipt {
                    let envelope = try SealedEnvelope.seal(
                        payload: payload, recipient: recipient, signer: signer,
                        header: EnvelopeHeader(federationID: joined.round.federationID, roundID: 1, nodeID: "node-a")).serialized()
                    var metadata = SubmitMetadata()
                    metadata.roundID = 1
                    metadata.nodeID = "node-a"
                    metadata.privacyAuditJson = unsignedAudit
                    return try await federation.submitEnvelope(envelope, metadata: metadata)
                }
                var rng = RandomSource(seed: 4)
                let descriptor = DatasetCatalog.digits
                let labels = (0..<10).flatMap { [$0, $0] }
                var set = SyntheticSet(
                    data: LabeledImages(images: Tensor.normal([20, 1, 8, 8], using: &rng), labels: labels, classCount: 10),
                    metadata: .init(dataset: "digits", imageShape: descriptor.imageShape, classCount: 10,
                                    normalization: descriptor.normalization, method: "dm", imagesPerClass: 2, iterations: 0,
                                    initialization: "noise", seed: 4, sourceClassCounts: Array(repeating: 30, count: 10)))
                func patched(_ key: String, _ value: String) throws -> [UInt8] {
                    var (entries, strings) = try SafeTensors.decode(set.encoded(), path: "s")
                    strings[key] = value
                    return SafeTensors.encode(entries, metadata: strings)
                }
                let header = #"{"images":{"dtype":"F32","shape":[4294967295,4294967295,4294967295,4294967295],"data_offsets":[0,4]}}"#
                let overflowing = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) } + Array(header.utf8) + [0, 0, 0, 0]
                let aliased = "{" + (0..<3000).map { #""t\#($0)":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}"# }
                    .joined(separator: ",") + "}"
                let aliasing = withUnsafeBytes(of: UInt64(aliased.utf8.count).littleEndian) { Array($0) } + Array(aliased.utf8) + [1, 2, 3, 4]
                let hostile: [(String, [UInt8], String)] = [
                    ("overflowing shape", overflowing, "shape"),
                    ("3,000 tensors on one byte range", aliasing, "overlap"),
                    ("huge class counts", try patched("source_class_counts", "[9223372036854775807,1,1,1,1,1,1,1,1,1]"), "source_class_counts"),
                    ("another dataset", try patched("dataset", "mnist"), "the round is on digits"),
                    ("a float where an integer belongs", try patched("ipc", "2.0"), "ipc"),
                ]
                for (what, payload, fragment) in hostile {
                    do {
                        _ = try await submit(payload)
                        Issue.record("the coordinator stored a set with \(what)")
                    } catch let error as RPCError {
                        #expect(error.code == .invalidArgument && error.message.contains(fragment), "\(what): \(error)")
                    }
                }
                // Megabytes of control characters in the unsigned metadata field are refused as well.
                do {
                    _ = try await submit(set.encoded(), unsignedAudit: String(repeating: "\u{1B}[2J\n", count: 1 << 20))
                    Issue.record("the coordinator took an unsigned audit")
                } catch let error as RPCError {
                    #expect(error.code == .invalidArgument && error.message.contains("not signed"), "\(error)")
                }
                #expect(try CoordinatorDatabase(stateDirectory: root + "/coordinator").records(round: 1).isEmpty)
                // The same node behaving: a valid set with its audit signed inside.
                set.metadata.privacyAudit = #"{"verdict":"pass"}"#
                _ = try await submit(set.encoded())
                // Once a set is stored, any other envelope from the node is refused before it is opened.
                do {
                    _ = try await submit(overflowing)
                    Issue.record("a second set from the same node was taken")
                } catch let error as RPCError {
                    #expect(error.code == .alreadyExists, "\(error)")
                }
            }
            var honest = nodeConfiguration("node-b", index: 1, port: port)
            honest.privacyGate = false
            let report = try await NodeRunner(configuration: honest, logger: logger).run()
            #expect(report.globalAccuracyMean != nil, "the honest node received the result")
            let database = try CoordinatorDatabase(stateDirectory: root + "/coordinator")
            #expect(try database.round(id: 1)?.state == .finished)
            #expect(try database.records(round: 1).map(\.privacyAuditJSON) == [#"{"verdict":"pass"}"#, ""])
            group.cancelAll()
        }
    }
}

extension FederatedRoundTests {
    /// Serves `configuration` in this process while `body` runs, passing the bound gRPC port and the dashboard's
    /// (nil when the configuration has none); stops the coordinator when `body` returns or throws.
    func withCoordinator<T: Sendable>(_ configuration: CoordinatorConfiguration, logger: Logger = Logger(label: "test"),
                                      _ body: @Sendable (_ port: Int, _ dashboard: Int?) async throws -> T) async throws -> T {
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let (dashboardPorts, dashboardContinuation) = AsyncStream<Int>.makeStream()
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                _ = try? await CoordinatorServer.run(configuration: configuration, logger: logger,
                                                     onDashboardListening: { dashboardContinuation.yield($0) }) { portContinuation.yield($0) }
                portContinuation.finish()
                return nil
            }
            defer { group.cancelAll() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next(), "the coordinator did not start")
            var dashboard: Int?
            if configuration.dashboardPort != nil {
                var dashboardIterator = dashboardPorts.makeAsyncIterator()
                dashboard = try #require(await dashboardIterator.next(), "the dashboard did not start")
            }
            return try await body(port, dashboard)
        }
    }
}
