import Coordinator
import Distill
import FederationProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Node
import Testing

/// The round configuration carries the recipe; a node that cannot run its method is refused at join.
@Suite("Round recipe", .serialized)
struct RoundRecipeTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-recipe-round-\(UUID().uuidString)").path
    var certs: String { root + "/certs" }

    @Test(.timeLimit(.minutes(1))) func joinCarriesTheRecipeAndRefusesANodeWithoutTheMethod() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let ca = try CertificateAuthority.create(in: certs, commonName: "test CA")
        try ca.issue(name: "coordinator", role: .coordinator(subjectAlternativeNames: CertificateAuthority.defaultCoordinatorNames))
        try KeyFiles.generate(in: certs, name: "coordinator")
        for node in ["node-a", "node-b"] {
            try ca.issue(name: node, role: .node)
            try KeyFiles.generate(in: certs, name: node)
        }
        let configuration = {
            var configuration = CoordinatorConfiguration()
            configuration.port = 0
            configuration.stateDirectory = root + "/coordinator"
            configuration.credentialsDirectory = certs
            configuration.expectedNodes = ["node-a", "node-b"]
            configuration.method = "herding"
            configuration.imagesPerClass = 2
            configuration.nodeIterations = 3
            configuration.width = 8
            return configuration
        }()
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                _ = try await CoordinatorServer.run(configuration: configuration, logger: Logger(label: "test"), shutdownSignals: []) {
                    portContinuation.yield($0)
                }
            }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            func join(_ node: String, capabilities: [String]) async throws -> Feddistill_V1_JoinResponse {
                let transport = try FederationTransport.client(host: "127.0.0.1", port: port,
                                                               credentials: TLSCredentials.inDirectory(certs, name: node))
                return try await withGRPCClient(transport: transport) { client in
                    var request = Feddistill_V1_JoinRequest()
                    request.nodeID = node
                    request.protocolVersion = ProtocolVersion.current
                    request.capabilities = capabilities
                    return try await Feddistill_V1_Federation.Client(wrapping: client).join(request)
                }
            }
            do {
                _ = try await join("node-b", capabilities: ["dm", "dc"])
                Issue.record("a node without herding joined a herding round")
            } catch let error as RPCError {
                #expect(error.code == .failedPrecondition && error.message.contains("'herding'"), "\(error)")
            }
            let joined = try await join("node-a", capabilities: Distiller.capabilities)
            let recipe = try DistillationRecipe.decode(json: joined.round.recipeJson)
            #expect(recipe == configuration.nodeRecipe)
            #expect(recipe.method == .herding && recipe.imagesPerClass == 2 && recipe.iterations == 3 && recipe.network.width == 8)
            #expect(joined.round.method == "herding")
            let status = try await withGRPCClient(transport: try FederationTransport.client(
                host: "127.0.0.1", port: port, credentials: TLSCredentials.inDirectory(certs, name: "node-a"))) { client in
                try await Feddistill_V1_Federation.Client(wrapping: client).status(Feddistill_V1_StatusRequest())
            }
            #expect(status.nodes == 1, "the refused node is not counted as joined")
            group.cancelAll()
        }
    }

    /// A node takes the round's recipe and overrides only images per class, iterations, its seed and its DP budget.
    @Test func nodeOverridesOnlyItsOwnFields() throws {
        var round = Feddistill_V1_RoundConfiguration()
        round.recipeJson = DistillationRecipe(imagesPerClass: 5, iterations: 40, network: .init(width: 16, depth: 2), seed: 99).json()
        var node = NodeConfiguration()
        node.imagesPerClass = 1
        node.seed = 7
        node.dpEpsilon = 2
        node.width = 64  // the round's recipe decides the network
        let recipe = try NodeRunner(configuration: node, logger: Logger(label: "test")).recipe(for: round)
        #expect(recipe == DistillationRecipe(imagesPerClass: 1, iterations: 40, network: .init(width: 16, depth: 2),
                                             privacy: PrivacyBudget(epsilon: 2, delta: 1e-5), seed: 7))
        // A coordinator that sends no recipe: DM with the round's sizes and the node's width.
        var legacy = Feddistill_V1_RoundConfiguration()
        (legacy.imagesPerClass, legacy.iterations) = (3, 4)
        node.imagesPerClass = nil
        let fallback = try NodeRunner(configuration: node, logger: Logger(label: "test")).recipe(for: legacy)
        #expect(fallback.method == .dm && fallback.imagesPerClass == 3 && fallback.iterations == 4 && fallback.network.width == 64)
        // With the node's DP budget the reference recipe's statistics bank keeps random networks only.
        #expect(fallback.settings == .distributionMatching(.recommendedPrivate) && fallback.privacy != nil)
        node.dpEpsilon = nil
        let bankRecipe = try NodeRunner(configuration: node, logger: Logger(label: "test")).recipe(for: legacy)
        #expect(bankRecipe.settings == .distributionMatching(.recommended) && bankRecipe.initialization == .noise)
        round.recipeJson = DistillationRecipe.reference(.dm).json()
        node.dpEpsilon = 2
        #expect(try NodeRunner(configuration: node, logger: Logger(label: "test")).recipe(for: round).settings
                == .distributionMatching(.recommendedPrivate))
        // The round's formation factor survives the node's DP budget (the coordinator refuses a set without it).
        var formed = DistillationRecipe.reference(.dm)
        formed.settings = .distributionMatching(.init(bankSize: 100, trainedNetworks: 4, trainingSteps: 200, classLossWeight: 1, formationFactor: 2))
        round.recipeJson = formed.json()
        let dpFormed = try NodeRunner(configuration: node, logger: Logger(label: "test")).recipe(for: round)
        #expect(dpFormed.settings == .distributionMatching(.init(bankSize: 100, formationFactor: 2)) && dpFormed.privacy != nil)
        // A recipe the node's DP budget cannot apply to is a clear error, not a trap.
        round.recipeJson = DistillationRecipe.reference(.dc).json()
        #expect(throws: NodeError.self) { try NodeRunner(configuration: node, logger: Logger(label: "test")).recipe(for: round) }
        round.recipeJson = "{\"method\": \"dm\"}"
        #expect(throws: NodeError.self) { try NodeRunner(configuration: node, logger: Logger(label: "test")).recipe(for: round) }
    }

    /// A node shares only the classes it holds at least `minRecordsPerClass` records of (counted after the gate's
    /// 20% hold-out), withholds the rest from both its members and its held-out records, and refuses with a message
    /// naming its largest class when none qualifies; 0 shares every class held.
    @Test func nodeSharesOnlyClassesAboveTheMinimum() throws {
        // Class c holds 100·c records (class 0 none): after the hold-out about 80·c to distill from.
        let labels = (0..<4).flatMap { c in Array(repeating: c, count: 100 * c) }
        let train = LabeledImages(images: Tensor(shape: [labels.count, 1, 2, 2]), labels: labels, classCount: 4)
        var node = NodeConfiguration()
        #expect(node.dpEpsilon == NodeConfiguration.defaultDPEpsilon && node.minRecordsPerClass == NodeConfiguration.defaultMinRecordsPerClass)
        node.minRecordsPerClass = 200
        let records = try NodeRunner.privateRecords(configuration: node, train: train, scheme: .iid)
        #expect(records.classes == [3] && records.withheld == [1, 2])
        #expect(Set(records.members.labels) == [3] && Set(records.heldOut.labels) == [3])
        #expect(records.members.count + records.heldOut.count == 300 && records.heldOut.count > 0)
        node.minRecordsPerClass = 0
        let all = try NodeRunner.privateRecords(configuration: node, train: train, scheme: .iid)
        #expect(all.classes == [1, 2, 3] && all.withheld.isEmpty && all.members.count + all.heldOut.count == 600 && all.heldOut.count == 120)
        node.minRecordsPerClass = 400
        do {
            _ = try NodeRunner.privateRecords(configuration: node, train: train, scheme: .iid)
            Issue.record("a node with no class of 400 records started")
        } catch {
            let message = String(describing: error)
            #expect(message.contains("at most \(all.members.classCounts().max() ?? 0) of a class") && message.contains("min_records_per_class is 400"),
                    "\(message)")
        }
    }
}
