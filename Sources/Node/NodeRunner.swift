import Distill
import FederationProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Synchronization

/// A node's settings: who it is, where the coordinator is, and which private data it holds.
public struct NodeConfiguration: Sendable, Codable {
    public var nodeID = "node-1"
    public var coordinatorHost = "127.0.0.1"
    public var coordinatorPort = 7443
    /// The name to verify in the coordinator's certificate (default: the host).
    public var serverName: String?
    /// Directory with `ca.pem`, `NODE.pem`, `NODE.key` and `NODE.signing.key`.
    public var credentialsDirectory = "certs"
    public var dataset = "digits"
    public var dataDirectory: String?
    /// The private partition: this node's share of the training split under a seeded partition scheme.
    public var partition = "iid"
    public var partitionNodes = 1
    public var partitionIndex = 0
    public var partitionSeed: UInt64 = 0
    /// Overrides of the round configuration.
    public var imagesPerClass: Int?
    public var iterations: Int?
    public var width = 128
    public var seed: UInt64 = 0
    /// Where the node writes its report.
    public var stateDirectory = "node-state"
    public var maxAttempts = 10
    /// The privacy gate (``PrivacyGate``): before sending, audit the set against a held-out 20% of the partition and
    /// refuse to send when an attack beats chance at the family-wise `privacyGateAlpha`, or (from 500 held-out records)
    /// TPR at 1% FPR exceeds `maxTPRAt1PercentFPR`. `false` disables it.
    public var privacyGate = true
    public var maxTPRAt1PercentFPR = 0.1
    /// The chance the gate refuses a set that leaks nothing (0.5%: a 10-node round loses an honest node < 5% of the time).
    public var privacyGateAlpha = 0.005
    /// Distill with differential privacy (DP-DM, with a statistics bank released by the Gaussian mechanism) at this ε;
    /// nil: no differential privacy. On by default (``defaultDPEpsilon``).
    public var dpEpsilon: Double? = NodeConfiguration.defaultDPEpsilon
    public var dpDelta = 1e-5
    /// Classes of which the node holds fewer records to distill from (after the gate's hold-out) are not shared; a
    /// node that holds no class with this many refuses to start. 0: share every class held.
    public var minRecordsPerClass = NodeConfiguration.defaultMinRecordsPerClass

    /// The default ε (δ = 1e-5): docs/privacy.md, "The node's default".
    public static let defaultDPEpsilon = 8.0
    /// The default minimum records per shared class: docs/privacy.md, "The node's default".
    public static let defaultMinRecordsPerClass = 400
    /// Rounds to take part in (0: every round until stopped). Between rounds the node asks the coordinator every
    /// `pollSeconds` whether a new round is open.
    public var rounds = 1
    public var pollSeconds = 2.0

    public init() {}
}

/// What a node did in a round.
public struct NodeReport: Sendable, Codable {
    public var nodeID: String
    public var roundID: UInt64
    public var privateImages: Int
    public var syntheticImages: Int
    public var bytesSent: Int
    public var distillSeconds: Double
    public var globalAccuracyMean: Double?
    public var globalAccuracyStandardDeviation: Double?
    /// Multi-round refinement: the earlier round whose global set this round's distillation started from (nil: the
    /// recipe's initialisation).
    public var startedFromRound: UInt64?
}

/// Runs one node: load the private partition, join, distill locally, seal, submit (with retries), wait for the result.
public struct NodeRunner: Sendable {
    public let configuration: NodeConfiguration
    let logger: Logger

    public init(configuration: NodeConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Progress callback: a phase name and, during distillation, iteration and total.
    public typealias Progress = @Sendable (_ phase: String, _ done: Int, _ total: Int) -> Void

    /// Takes part in `rounds` rounds (0: every round until the task is cancelled) and returns the last round's
    /// report. One round: join, distill, audit, seal, submit (with retries), wait for the result. Between rounds the
    /// node asks the coordinator every `pollSeconds` for a newly opened round. A set its privacy gate refuses is not
    /// sent: the node declines the round (the coordinator stops waiting for it) and, with one round, fails; a
    /// long-lived node goes on to the next round.
    public func run(progress: Progress? = nil) async throws -> NodeReport {
        let config = configuration
        guard let scheme = PartitionScheme(config.partition) else { throw NodeError.invalid("unknown partition '\(config.partition)'") }
        guard config.partitionIndex >= 0, config.partitionIndex < config.partitionNodes else {
            throw NodeError.invalid("partition index \(config.partitionIndex) is outside 0..<\(config.partitionNodes)")
        }
        guard config.rounds >= 0, config.pollSeconds.isFinite, config.pollSeconds > 0 else {
            throw NodeError.invalid("rounds must be ≥ 0 and poll_seconds positive")
        }
        let splits = try DatasetStore.resolve(explicit: config.dataDirectory).load(config.dataset)
        let shared = try Self.privateRecords(configuration: config, train: splits.train, scheme: scheme)
        let data = PrivateData(descriptor: splits.descriptor, members: shared.members, heldOut: shared.heldOut)
        logger.info("private partition loaded", metadata: [
            "node.id": "\(config.nodeID)", "images": "\(data.members.count)", "classes.shared": "\(shared.classes.count)",
            "classes.withheld": "\(shared.withheld.count)", "dp.epsilon": "\(config.dpEpsilon.map { "\($0)" } ?? "off")",
        ])
        if !shared.withheld.isEmpty {
            logger.notice("classes with fewer records than min_records_per_class are not shared", metadata: [
                "node.id": "\(config.nodeID)", "classes": "\(shared.withheld.map(String.init).joined(separator: ","))",
                "min_records_per_class": "\(config.minRecordsPerClass)",
            ])
        }
        let signing = try KeyFiles.readSigningKeys(KeyFiles.paths(in: config.credentialsDirectory, name: config.nodeID).signingKey)
        let transport = try FederationTransport.client(
            host: config.coordinatorHost, port: config.coordinatorPort, serverName: config.serverName,
            credentials: TLSCredentials.inDirectory(config.credentialsDirectory, name: config.nodeID))
        return try await withGRPCClient(transport: transport) { client in
            let federation = Feddistill_V1_Federation.Client(wrapping: client)
            var last: NodeReport?
            var lastRound: UInt64 = 0
            var taken = 0
            while config.rounds == 0 || taken < config.rounds {
                if config.rounds != 1 {
                    // Long-lived: wait until the coordinator has a round open that this node has not taken part in.
                    lastRound = try await waitForOpenRound(after: lastRound, federation: federation, progress: progress)
                }
                do {
                    let report = try await takePart(federation: federation, data: data, signing: signing, progress: progress)
                    last = report
                    lastRound = max(lastRound, report.roundID)
                } catch let NodeError.declined(round, reason) {
                    lastRound = max(lastRound, round)
                    guard config.rounds != 1 else { throw NodeError.notSent(reason) }
                    logger.error("declined this round (\(DeclineReason.isPrivacyGate(reason) ? "privacy gate" : "recipe")); waiting for the next round",
                                 metadata: ["node.id": "\(config.nodeID)", "round.id": "\(round)"])
                }
                taken += 1
            }
            guard let last else { throw NodeError.invalid("no round completed") }
            return last
        }
    }

    /// What a node shares from: the records it distills from (`members`), those its privacy gate holds out, the classes
    /// it shares and those it withholds for holding fewer than `minRecordsPerClass` records to distill from.
    public struct PrivateRecords: Sendable {
        public let members: LabeledImages
        public let heldOut: LabeledImages
        public let classes: [Int]
        public let withheld: [Int]
    }

    /// This node's partition of `train` under its partition settings, split (seeded) into the records it distills from
    /// and the 20% its privacy gate holds out as non-members, keeping only the classes with at least
    /// `minRecordsPerClass` records to distill from. Throws, naming the largest class, when no class qualifies: a set
    /// distilled from so few records is what the audits catch (docs/privacy.md). `simulate` calls it before it starts
    /// any process.
    public static func privateRecords(configuration config: NodeConfiguration, train: LabeledImages,
                                      scheme: PartitionScheme) throws -> PrivateRecords {
        guard config.minRecordsPerClass >= 0 else { throw NodeError.invalid("min_records_per_class must be ≥ 0") }
        let parts = Partitioner.partition(labels: train.labels, classCount: train.classCount,
                                          nodes: config.partitionNodes, scheme: scheme, seed: config.partitionSeed)
        let partition = train.subset(parts[config.partitionIndex])
        // Hold out 20% of the partition (seeded) as the privacy gate's non-members; distill from the rest.
        var splitRNG = RandomSource(seed: config.seed ^ 0x9A7E)
        let order = splitRNG.permutation(partition.count)
        let heldOutCount = config.privacyGate ? partition.count / 5 : 0
        var members = partition.subset(Array(order.dropFirst(heldOutCount)))
        var heldOut = partition.subset(Array(order.prefix(heldOutCount)))
        let counts = members.classCounts()
        let held = counts.indices.filter { counts[$0] > 0 }
        let classes = held.filter { counts[$0] >= config.minRecordsPerClass }
        guard !classes.isEmpty else {
            throw NodeError.invalid("""
                \(config.nodeID) holds too few records to share: at most \(counts.max() ?? 0) of a class to distill from \
                (after the privacy gate's 20% hold-out), min_records_per_class is \(config.minRecordsPerClass). A set distilled \
                from so few records leaks them (docs/privacy.md, "The node's default"). Give the node more records, or, for \
                public data only, set min_records_per_class 0 (--min-records-per-class 0).
                """)
        }
        // Held-out records only of shared classes too (a class whose few records all fell into the hold-out is not shared).
        let keep = Set(classes)
        if classes.count < held.count { members = members.subset(members.labels.indices.filter { keep.contains(members.labels[$0]) }) }
        heldOut = heldOut.subset(heldOut.labels.indices.filter { keep.contains(heldOut.labels[$0]) })
        return PrivateRecords(members: members, heldOut: heldOut, classes: classes, withheld: held.filter { counts[$0] < config.minRecordsPerClass })
    }

    /// The partition this node distills from and the records its privacy gate holds out; and the statistics bank the
    /// first round built from `members`, which later rounds reuse (the records do not change while the node runs, and
    /// the bank — the costliest part of a round — never leaves the process).
    final class PrivateData: Sendable {
        let descriptor: DatasetDescriptor
        let members: LabeledImages
        let heldOut: LabeledImages
        let bank = Mutex<StatisticsBank?>(nil)

        init(descriptor: DatasetDescriptor, members: LabeledImages, heldOut: LabeledImages) {
            self.descriptor = descriptor
            self.members = members
            self.heldOut = heldOut
        }
    }

    /// Polls the coordinator's status until a round after `round` is open; returns that round's id.
    private func waitForOpenRound(after round: UInt64, federation: Feddistill_V1_Federation.Client<some ClientTransport>,
                                  progress: Progress?) async throws -> UInt64 {
        var announced = false
        while true {
            let status = try await retrying("status") { try await federation.status(Feddistill_V1_StatusRequest()) }
            if status.phase == .open, status.currentRoundID > round { return status.currentRoundID }
            if !announced {
                logger.info("waiting for the next round", metadata: ["node.id": "\(configuration.nodeID)", "after.round": "\(round)"])
                announced = true
            }
            let eta = status.progress.etaSeconds
            progress?("next-round", 0, eta >= 0 ? Int(eta.rounded()) : 0)
            try await Task.sleep(for: .milliseconds(Int64(configuration.pollSeconds * 1000)))
        }
    }

    /// One round: join, distill, audit (declining when the gate refuses), seal, submit, wait for the result.
    private func takePart(federation: Feddistill_V1_Federation.Client<some ClientTransport>, data: PrivateData,
                          signing: SigningKeys, progress: Progress?) async throws -> NodeReport {
        let config = configuration
        progress?("join", 0, 1)
        var request = Feddistill_V1_JoinRequest()
        request.nodeID = config.nodeID
        request.protocolVersion = ProtocolVersion.current
        request.capabilities = Distiller.capabilities
        let joined = try await retrying("join") { try await federation.join(request) }
        let round = joined.round
        guard round.datasetName == config.dataset, round.imageShape.map(Int.init) == data.descriptor.imageShape else {
            throw NodeError.invalid("round expects \(round.datasetName) \(round.imageShape), this node holds \(config.dataset)")
        }
        let recipient = try SealingPublicKey(rawRepresentation: Array(joined.sealingPublicKey))
        let recipe: DistillationRecipe
        do { recipe = try self.recipe(for: round) } catch {
            // A round this node cannot take part in with its settings (say, a method DP-DM does not cover): tell the
            // coordinator, so that the round stops waiting for it.
            try await decline(round: round.roundID, reason: DeclineReason.recipe + "\(error)", federation: federation)
        }
        let startImages = round.startFromRound > 0
            ? await refinementStart(round: round, recipe: recipe, data: data, federation: federation, progress: progress)
            : nil
        let start = Date()
        var set = try await distill(data, recipe: recipe, start: startImages, progress: progress)
        if startImages != nil { set.metadata.initialization = "global-round-\(round.startFromRound)" }
        let distillSeconds = Date().timeIntervalSince(start)
        if config.privacyGate {
            progress?("audit", 0, 1)
            let (summary, passed, reason) = try await audit(set, members: data.members, nonMembers: data.heldOut, descriptor: data.descriptor)
            // The summary travels inside the set, so the node's signature covers it.
            if let summary = try? SyntheticSet.Metadata.validatedAuditSummary(summary, path: "privacy audit") {
                set.metadata.privacyAudit = summary
            }
            guard passed else {
                logger.error("privacy gate blocked the submission", metadata: ["node.id": "\(config.nodeID)", "reason": "\(reason)"])
                // Tell the coordinator, so that the round stops waiting for this node; the set itself stays here.
                try await decline(round: round.roundID, reason: DeclineReason.privacyGate + reason, federation: federation)
            }
        }
        let envelope = try SealedEnvelope.seal(
            payload: set.encoded(), recipient: recipient, signer: signing,
            header: EnvelopeHeader(federationID: round.federationID, roundID: round.roundID, nodeID: config.nodeID)).serialized()
        var metadata = SubmitMetadata()
        metadata.roundID = round.roundID
        metadata.nodeID = config.nodeID
        progress?("submit", 0, 1)
        // The same bytes on every attempt: a node that lost its receipt resubmits and is stored once.
        _ = try await retrying("submit") { try await federation.submitEnvelope(envelope, metadata: metadata) }
        logger.info("set submitted", metadata: ["node.id": "\(config.nodeID)", "envelope.bytes": "\(envelope.count)"])
        progress?("wait", 0, 1)
        var report = NodeReport(nodeID: config.nodeID, roundID: round.roundID, privateImages: data.members.count,
                                syntheticImages: set.data.count, bytesSent: envelope.count, distillSeconds: distillSeconds,
                                startedFromRound: startImages == nil ? nil : round.startFromRound)
        var watch = Feddistill_V1_WatchRoundRequest()
        watch.nodeID = config.nodeID
        watch.roundID = round.roundID
        // A coordinator that restarts mid-round resumes from its database; the watch reconnects and replays. While the
        // coordinator merges and evaluates, its progress events show here instead of a bare wait.
        let final = try await retrying("watch") {
            try await federation.watchRound(watch) { response -> Feddistill_V1_FinalResult? in
                var final: Feddistill_V1_FinalResult?
                for try await event in response.messages {
                    switch event.event {
                    case let .finalResult(result)?: final = result
                    case let .progress(step)?:
                        progress?("coordinator-" + Self.phaseName(step.step), Int(clamping: step.done), Int(clamping: step.total))
                    default: break
                    }
                }
                return final
            }
        }
        report.globalAccuracyMean = final?.accuracyMean
        report.globalAccuracyStandardDeviation = final?.accuracyStd
        try FileManager.default.createDirectory(atPath: config.stateDirectory, withIntermediateDirectories: true)
        try JSONEncoder().encode(report).write(to: URL(fileURLWithPath: config.stateDirectory + "/\(config.nodeID)-round-\(round.roundID).json"),
                                               options: .atomic)
        progress?("done", 1, 1)
        return report
    }

    /// Tells the coordinator this node declines `round` (so the round stops waiting for it), then throws
    /// ``NodeError/declined(round:reason:)``.
    private func decline(round: UInt64, reason: String, federation: Feddistill_V1_Federation.Client<some ClientTransport>) async throws -> Never {
        var decline = Feddistill_V1_DeclineRequest()
        decline.nodeID = configuration.nodeID
        decline.roundID = round
        decline.reason = reason
        do { _ = try await retrying("decline") { try await federation.decline(decline) } } catch {
            logger.notice("could not tell the coordinator that this node declines the round", metadata: ["error": "\(error)"])
        }
        throw NodeError.declined(round: round, reason: reason)
    }

    /// A coordinator's step name as one progress word (letters, digits and '-' only; it is the coordinator's text).
    static func phaseName(_ step: String) -> String {
        let cleaned = String(step.prefix(32).unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) || $0 == "-" })
        return cleaned.isEmpty ? "working" : cleaned
    }

    /// The recipe this node distills with: the round's (the reference DM recipe, with its statistics bank, at the node's
    /// width when the coordinator sends none), with the node's overrides: images per class and iterations when set,
    /// always its own seed, and its DP budget when it has one (a node may add differential privacy, never drop the
    /// round's; under DP a statistics bank holds random networks only, so a DP node drops the round's trained networks
    /// and class loss).
    public func recipe(for round: Feddistill_V1_RoundConfiguration) throws -> DistillationRecipe {
        let config = configuration
        var recipe: DistillationRecipe
        if round.recipeJson.isEmpty {
            recipe = DistillationRecipe.reference(.dm)
            recipe.imagesPerClass = Int(round.imagesPerClass)
            recipe.iterations = Int(round.iterations)
            recipe.network.width = config.width
        } else {
            do { recipe = try DistillationRecipe.decode(json: round.recipeJson) } catch {
                throw NodeError.invalid("the round's recipe is unusable: \(error)")
            }
        }
        if let imagesPerClass = config.imagesPerClass { recipe.imagesPerClass = imagesPerClass }
        if let iterations = config.iterations { recipe.iterations = iterations }
        // Round 1 distills with the node's seed, round r with seed + r − 1 (a new start and new networks each round).
        recipe.seed = round.roundID <= 1 ? config.seed : config.seed &+ (round.roundID - 1)
        if let dpEpsilon = config.dpEpsilon {
            // The bank keeps its size with random networks only; the formation factor stays (it shapes the synthetic
            // side only, and the coordinator expects the round's factor).
            recipe.applyPrivacy(PrivacyBudget(epsilon: dpEpsilon, delta: config.dpDelta))
        }
        do { try recipe.validate() } catch { throw NodeError.invalid("with this node's settings the round's recipe is invalid: \(error)") }
        return recipe
    }

    /// Multi-round refinement: the stored images of the global set the round names, of the classes this node holds,
    /// to start from instead of the recipe's initialisation. Downloaded over the node's mutual-TLS session and checked against the SHA-256 in the
    /// round configuration; a set that does not fit this node's recipe (dataset, shape, classes, images per class,
    /// formation factor) or cannot be fetched is logged and the node starts from the recipe's initialisation.
    private func refinementStart(round: Feddistill_V1_RoundConfiguration, recipe: DistillationRecipe, data: PrivateData,
                                 federation: Feddistill_V1_Federation.Client<some ClientTransport>,
                                 progress: Progress?) async -> LabeledImages? {
        let source = round.startFromRound
        progress?("fetch-global", 0, 1)
        do {
            var request = Feddistill_V1_GlobalSetRequest()
            request.roundID = source
            let bytes = try await retrying("global set") {
                try await federation.globalSet(request) { response -> Data in
                    var bytes = Data()
                    for try await chunk in response.messages {
                        guard chunk.totalSize <= UInt64(Self.maxGlobalSetBytes), bytes.count + chunk.data.count <= Int(chunk.totalSize) else {
                            throw NodeError.invalid("the global set of round \(source) is larger than announced or than \(Self.maxGlobalSetBytes) bytes")
                        }
                        bytes.append(chunk.data)
                    }
                    return bytes
                }
            }
            let digest = sha256Hex(bytes)
            guard digest == round.startSetSha256 else {
                throw NodeError.invalid("the global set of round \(source) does not match the SHA-256 in the round configuration")
            }
            let set = try SyntheticSet.decode(Array(bytes), path: "global set of round \(source)")
            let meta = set.metadata
            let descriptor = data.descriptor
            guard meta.dataset == descriptor.name, meta.imageShape == descriptor.imageShape, meta.classCount == descriptor.classCount else {
                throw NodeError.invalid("the global set of round \(source) is for \(meta.dataset) \(meta.imageShape), this node holds \(descriptor.name)")
            }
            guard meta.formationFactor == recipe.formationFactor else {
                throw NodeError.invalid("the global set has formation factor \(meta.formationFactor), the recipe \(recipe.formationFactor)")
            }
            // Only the classes this node holds: it distills and sends nothing else (as in a round without refinement).
            let held = data.members.classCounts()
            var indices: [Int] = []
            for (label, members) in set.data.indicesByClass().enumerated() where label < held.count && held[label] > 0 {
                guard members.count >= recipe.imagesPerClass else {
                    throw NodeError.invalid("the global set has \(members.count) images of a class, the recipe asks for \(recipe.imagesPerClass)")
                }
                indices += members.prefix(recipe.imagesPerClass)
            }
            progress?("fetch-global", 1, 1)
            logger.info("starting from an earlier global set", metadata: ["node.id": "\(configuration.nodeID)", "from.round": "\(source)"])
            return set.data.subset(indices)
        } catch {
            logger.error("cannot start from the earlier global set; starting from the recipe's initialisation",
                         metadata: ["node.id": "\(configuration.nodeID)", "from.round": "\(source)", "error": "\(error)"])
            return nil
        }
    }

    /// The largest global set a node downloads (1 GiB: 1,000 images per class of a 10-class 3×64×64 dataset fit six
    /// times over); a coordinator cannot make a node buffer more.
    static let maxGlobalSetBytes = 1 << 30

    private func distill(_ data: PrivateData, recipe: DistillationRecipe, start: LabeledImages?,
                         progress: Progress?) async throws -> SyntheticSet {
        try await Parallel.offThePool {
            try Distiller.run(recipe: recipe, data: data.members, descriptor: data.descriptor, start: start,
                              progress: { iteration, total, _ in
                                  progress?("distill", iteration, total)
                                  return true
                              },
                              preparation: { done, total in progress?("bank", done, total) },
                              bank: data.bank.withLock { $0 },
                              builtBank: { bank in data.bank.withLock { $0 = bank } })
        }
    }

    /// Audits the set against the held-out records (DCR in pixel and embedding space, loss attack) on the images a
    /// model trains on; a multi-formation set's stored images (what leaves the node) also face the DCR attacks, and
    /// either view failing fails the gate.
    /// - Returns: the JSON summary (metrics only, no data; a multi-formation set's stored-image report under
    ///   `stored_images`), whether the policy passed, and why not.
    private func audit(_ set: SyntheticSet, members: LabeledImages, nonMembers: LabeledImages,
                       descriptor: DatasetDescriptor) async throws -> (String, Bool, String) {
        let config = configuration
        guard !nonMembers.labels.isEmpty, !members.labels.isEmpty else { return ("{}", true, "") }
        return try await Parallel.offThePool {
            var options = PrivacyGate.Options(
                network: ConvNet.Configuration(imageShape: descriptor.imageShape, classCount: descriptor.classCount, width: config.width))
            options.seed = config.seed
            options.familyWiseAlpha = config.privacyGateAlpha
            options.maxTPRAt1PercentFPR = config.maxTPRAt1PercentFPR
            let decision = PrivacyGate(options: options).judge(set, members: members, nonMembers: nonMembers)
            let data = (try? JSONSerialization.data(withJSONObject: decision.summary, options: [.sortedKeys])) ?? Data()
            return (String(decoding: data, as: UTF8.self), decision.passed, decision.reasons.joined(separator: "; "))
        }
    }

    private func retrying<T: Sendable>(_ what: String, _ body: () async throws -> T) async throws -> T {
        try await RetryPolicy(maxAttempts: configuration.maxAttempts).run(what, logger: logger, body)
    }
}

/// Node configuration errors.
public enum NodeError: Error, CustomStringConvertible {
    case invalid(String)
    /// The node did not send a set (its privacy gate refused it, or it cannot run the round's recipe); the reason
    /// names which.
    case notSent(String)
    /// The node declined the round (privacy gate, or a recipe it cannot run) and told the coordinator; the reason
    /// starts with which.
    case declined(round: UInt64, reason: String)

    public var description: String {
        switch self {
        case let .invalid(message): message
        case let .notSent(reason): "the set was not sent: \(reason)"
        case let .declined(round, reason): "round \(round) declined, the set was not sent: \(reason)"
        }
    }
}
