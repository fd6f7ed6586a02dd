import Distill
import FederationProtocol
import Foundation
import GRPCCore
import Logging
import CoreMetrics
import Synchronization

/// The wall clock a round reads (deadlines, timestamps); tests inject their own.
public struct RoundClock: Sendable {
    public var now: @Sendable () -> Date

    public init(now: @escaping @Sendable () -> Date) {
        self.now = now
    }

    /// The system clock.
    public static let system = RoundClock { Date() }
}

/// A closed round's finalisation, for whoever runs it (``RoundService`` runs it as a child task).
public struct FinalizationRequest: Sendable, Equatable {
    /// The nodes whose stored sets are merged.
    public var submitted: [String]
    /// Expected nodes without a usable submission, and why.
    public var failures: [String: String]
}

/// The coordinator's state for one round: registrations, durable submissions, round events and the result.
/// Carries out what ``RoundStateMachine`` decides. When the round closes it posts a ``FinalizationRequest`` on
/// ``finalizationRequests``; the owner (``RoundService``) runs ``finalize(_:)`` for it as a child task, and the merge
/// and evaluation run on their own thread.
public actor RoundCoordinator {
    public let configuration: CoordinatorConfiguration
    let clock: RoundClock
    /// Closed rounds waiting to be finalised; finishes when the round ends.
    public nonisolated let finalizationRequests: AsyncStream<FinalizationRequest>
    private let finalizationContinuation: AsyncStream<FinalizationRequest>.Continuation
    let descriptor: DatasetDescriptor
    let database: CoordinatorDatabase
    let metrics: CoordinatorMetrics
    let verifier: EnvelopeVerifier
    /// The one path from sealed bytes to a validated set (submit and finalisation).
    nonisolated let opener: SubmissionOpener
    /// One upload per node, a bound on the bytes being received at once.
    nonisolated let admission: SubmissionAdmission
    let sealingKeys: SealingKeys
    let logger: Logger
    var machine: RoundStateMachine
    var joined: Set<String> = []
    var events: [Feddistill_V1_RoundEvent] = []
    var watchers: [UUID: AsyncStream<Feddistill_V1_RoundEvent>.Continuation] = [:]
    var finished: [CheckedContinuation<RoundResult, any Error>] = []
    /// Nodes whose round watch has carried the final event (result or failure) to them.
    var informed: Set<String> = []
    public private(set) var result: RoundResult?
    var failure: String?
    /// The round's state as stored when this process started (`open` or `closed`).
    let storedState: CoordinatorDatabase.RoundState
    /// Whether the coordinator serves and the round's phase, for the health service and the HTTP probes.
    public nonisolated let health: CoordinatorHealth
    /// This process started on a round that had already ended (finished or failed) and, with `exit_after_round`
    /// false, only serves its stored outcome: status, health, metrics, and the final event to nodes that watch.
    public nonisolated let concludedBeforeStart: Bool
    /// What the finalisation is doing (step, done, total), shared with the status answer and the dashboard.
    public nonisolated let progress: ProgressBoard
    /// Multi-round refinement: the earlier round whose global set this round's nodes start from, and that set's
    /// SHA-256 (nil: the recipe's initialisation).
    public nonisolated let refinementStart: (round: UInt64, sha256: String)?

    /// Opens the state database and loads keys. A restart keeps the round's original deadline; call ``resume()``
    /// to replay the submissions already stored.
    /// `metricsFactory` receives the round's counters and gauges (default: the process-wide `MetricsSystem`).
    /// - Throws: `RoundFailure` if the round already finished or failed (start a new round id) and the coordinator
    ///   exits after its round; with `exit_after_round` false it starts serving the stored outcome instead
    ///   (``concludedBeforeStart``): an orchestrator's restart must not turn into a crash loop.
    ///
    /// A long-running coordinator (``RoundScheduler``) makes one per round and passes what outlives rounds in
    /// `shared` (the database, the health board, the progress board); with `serveConcluded` a concluded round is
    /// served whatever `exit_after_round` says (the scheduler decides what comes after it).
    public init(configuration: CoordinatorConfiguration, logger: Logger,
                metricsFactory: any MetricsFactory = MetricsSystem.factory, clock: RoundClock = .system,
                shared: CoordinatorShared? = nil, serveConcluded: Bool = false) throws {
        try configuration.validate()
        self.configuration = configuration
        self.clock = clock
        (finalizationRequests, finalizationContinuation) = AsyncStream.makeStream()
        self.logger = logger
        metrics = CoordinatorMetrics(factory: metricsFactory)
        descriptor = try DatasetCatalog.descriptor(named: configuration.dataset)
        database = try shared?.database ?? CoordinatorDatabase(stateDirectory: configuration.stateDirectory)
        progress = shared?.progress ?? ProgressBoard(clock: clock.now)
        let now = clock.now()
        let round = try database.openRound(id: configuration.roundID, now: Int64(now.timeIntervalSince1970),
                                           deadline: Int64(now.addingTimeInterval(configuration.deadlineSeconds).timeIntervalSince1970))
        try database.setRoundConfiguration(id: configuration.roundID, json: configuration.roundConfigurationJSON)
        refinementStart = configuration.refine
            ? try Self.latestGlobalSet(before: configuration.roundID, database: database, stateDirectory: configuration.stateDirectory)
            : nil
        switch round.state {
        case _ where serveConcluded: break
        case .finished where configuration.exitAfterRound:
            throw RoundFailure(reason: "round \(round.id) already finished (see \(configuration.stateDirectory)/result-round-\(round.id).json); "
                               + "start the next round with a new round id")
        case .failed where configuration.exitAfterRound:
            throw RoundFailure(reason: "round \(round.id) failed earlier (\(round.failure ?? "no reason stored")); start a new round id")
        default: break
        }
        storedState = round.state
        concludedBeforeStart = round.state == .finished || round.state == .failed
        let phase: CoordinatorHealth.Phase = switch round.state {
        case .closed: .finalizing
        case .finished: .finished
        case .failed: .failed
        default: .open
        }
        if let shared {
            health = shared.health
            health.beginRound(configuration.roundID, phase: phase)
        } else {
            health = CoordinatorHealth(roundID: configuration.roundID, phase: phase)
        }
        metrics.roundID.record(Int(configuration.roundID))
        sealingKeys = try KeyFiles.readSealingKeys(configuration.sealingKeyPath)
        var keys: [String: SigningPublicKey] = [:]
        for node in configuration.expectedNodes {
            keys[node] = try KeyFiles.readSigningPublicKey(KeyFiles.paths(in: configuration.credentialsDirectory, name: node).signingPublic)
        }
        verifier = EnvelopeVerifier(federationID: configuration.federationID, recipientKeys: sealingKeys,
                                    nodeSigningKeys: keys, replayStore: InMemoryReplayStore(),
                                    limits: configuration.envelopeLimits)
        opener = SubmissionOpener(verifier: verifier, roundID: configuration.roundID, descriptor: descriptor,
                                  maxImagesPerClass: configuration.maxImagesPerClass,
                                  formationFactor: configuration.nodeRecipe?.formationFactor ?? 1)
        admission = SubmissionAdmission(maxBytesInFlight: configuration.maxUploadBytesInFlight)
        machine = RoundStateMachine(expectedNodes: Set(configuration.expectedNodes), quorum: configuration.quorum,
                                    deadline: Date(timeIntervalSince1970: TimeInterval(round.deadlineUnixSeconds)))
        guard concludedBeforeStart else {
            metrics.roundState.record(0)
            progress.begin("admitting", total: configuration.expectedNodes.count)
            return
        }
        // Serving a concluded round: nothing to finalise; a node that watches receives the stored outcome and the end.
        finalizationContinuation.finish()
        if round.state == .failed {
            failure = round.failure ?? "the round failed before this start (no reason stored)"
            metrics.roundState.record(3)
        } else {
            metrics.roundState.record(2)
            let event = Self.storedOutcomeEvent(round, now: clock.now())
            events = [event]
            metrics.globalAccuracy.record(event.finalResult.accuracyMean)
        }
        logger.notice("the round had ended before this start; serving its stored outcome until stopped",
                      metadata: ["round.id": "\(configuration.roundID)", "state": "\(round.state)"])
    }

    /// The final event of a stored finished round (its report and accuracy), for nodes that watch it later.
    static func storedOutcomeEvent(_ round: CoordinatorDatabase.Round, now: Date) -> Feddistill_V1_RoundEvent {
        let report = round.resultJSON ?? "{}"
        let global = (try? JSONSerialization.jsonObject(with: Data(report.utf8)) as? [String: Any])?["global"] as? [String: Any]
        var event = Feddistill_V1_RoundEvent()
        event.roundID = round.id
        event.atUnixSeconds = Int64(now.timeIntervalSince1970)
        event.finalResult.accuracyMean = global?["accuracy_mean"] as? Double ?? 0
        event.finalResult.accuracyStd = global?["accuracy_std"] as? Double ?? 0
        event.finalResult.reportJson = report
        return event
    }

    /// Replays stored submissions (and declines) into the state machine; call once after init.
    public func resume() throws {
        guard !concludedBeforeStart else { return }
        // Progress of the finalisation reaches the nodes that watch the round, throttled by the board.
        progress.listen { [weak self] snapshot in
            guard let self else { return }
            Task { await self.publishProgress(snapshot) }
        }
        for record in try database.records(round: configuration.roundID) {
            logger.info("resuming stored submission", metadata: ["node.id": "\(PeerText.escaped(record.nodeID))", "round.id": "\(record.roundID)"])
            act(machine.submissionStored(from: record.nodeID, now: clock.now()))
        }
        for (node, entry) in try database.nodes(inRound: configuration.roundID) where entry.state == .declined {
            act(machine.declined(by: node, now: clock.now()))
        }
        metrics.submissionsInRound.record(machine.submitted.count)
        // A round that had closed before a crash (it was merging) closes again at once with what it holds.
        if storedState == .closed, result == nil, failure == nil {
            act(machine.closeNow())
        }
    }

    /// The round configuration handed to joining nodes. A node that cannot run the round's method (it is not among
    /// the `capabilities` it announced) is refused with `failedPrecondition`, before it is recorded as joined.
    func join(node: String, capabilities: [String]) throws -> Feddistill_V1_JoinResponse {
        guard capabilities.contains(configuration.method) else {
            let announced = capabilities.prefix(16).map { PeerText.escaped($0, maxCharacters: 32) }.joined(separator: ", ")
            throw RPCError(code: .failedPrecondition, message: "round \(configuration.roundID) distills with method "
                           + "'\(configuration.method)', which \(PeerText.escaped(node)) does not support (capabilities: \(announced))")
        }
        guard isRunning else {
            throw RPCError(code: .failedPrecondition, message: "round \(configuration.roundID) has ended; no round is open")
        }
        let now = Int64(clock.now().timeIntervalSince1970)
        try database.nodeSeen(node, atUnixSeconds: now)
        try database.setNode(.init(nodeID: node, state: .joined, atUnixSeconds: now), round: configuration.roundID)
        metrics.joins.increment()
        if joined.insert(node).inserted {
            logger.info("node joined", metadata: ["node.id": "\(PeerText.escaped(node))"])
            publish { $0.nodeJoined.nodeID = node }
        }
        var response = Feddistill_V1_JoinResponse()
        response.round = roundConfiguration()
        response.sealingPublicKey = Data(sealingKeys.publicKey.rawRepresentation)
        return response
    }

    /// What nodes are asked to do in this round (join answers and an operator's `round start` carry it).
    func roundConfiguration() -> Feddistill_V1_RoundConfiguration {
        var round = Feddistill_V1_RoundConfiguration()
        round.roundID = configuration.roundID
        round.federationID = configuration.federationID
        round.datasetName = configuration.dataset
        round.imageShape = descriptor.imageShape.map(UInt32.init)
        round.classCount = UInt32(descriptor.classCount)
        round.method = configuration.method
        round.imagesPerClass = UInt32(configuration.imagesPerClass)
        round.iterations = UInt32(configuration.nodeIterations)
        round.deadlineUnixSeconds = Int64(machine.deadline.timeIntervalSince1970)
        round.quorum = UInt32(configuration.quorum)
        round.recipeJson = configuration.nodeRecipe?.json() ?? ""
        if let refinementStart {
            round.startFromRound = refinementStart.round
            round.startSetSha256 = refinementStart.sha256
        }
        return round
    }

    /// The newest finished round before `round` whose global set is on disk, and the SHA-256 its result recorded.
    static func latestGlobalSet(before round: UInt64, database: CoordinatorDatabase,
                                stateDirectory: String) throws -> (round: UInt64, sha256: String)? {
        for stored in try database.rounds(limit: 100) where stored.id < round && stored.state == .finished {
            guard let digest = stored.globalSetSHA256, digest.count == 64,
                  FileManager.default.fileExists(atPath: globalSetPath(round: stored.id, stateDirectory: stateDirectory))
            else { continue }
            return (stored.id, digest)
        }
        return nil
    }

    /// Where round `round`'s global set is stored.
    static func globalSetPath(round: UInt64, stateDirectory: String) -> String {
        stateDirectory + "/global-round-\(round).safetensors"
    }

    /// Verifies, validates and durably stores one envelope; returns the receipt. The envelope is opened off the
    /// actor with the same ``SubmissionOpener`` the finalisation uses, so a stored set can always be merged.
    func submit(_ submission: ReceivedSubmission) async throws -> Feddistill_V1_Receipt {
        let node = submission.nodeID
        let digest = submission.digest.map { String(format: "%02x", $0) }.joined()
        if let existing = try database.record(round: configuration.roundID, node: node) {
            guard existing.digestHex == digest else {
                // One set per node and round, checked before the envelope is opened at all.
                let error = StoreError.conflictingSubmission(node: node, round: configuration.roundID)
                reject(node, reason: error.description)
                throw RPCError(code: .alreadyExists, message: error.description)
            }
            logger.info("resubmission of a stored envelope", metadata: ["node.id": "\(PeerText.escaped(node))"])
            metrics.duplicateSubmissions.increment()
            return submission.receipt(storedAtUnixSeconds: existing.storedAtUnixSeconds)
        }
        guard machine.accepts(node) else {
            throw RPCError(code: .failedPrecondition, message: "round \(configuration.roundID) is not accepting submissions from this node")
        }
        let opened: SubmissionOpener.Opened
        do { opened = try await opener.openOffActor(submission.envelope, from: node) } catch {
            reject(node, reason: error.description)
            throw error.rpcError
        }
        let signedAudit = opened.set.metadata.privacyAudit ?? ""
        guard submission.metadata.privacyAuditJson.isEmpty || submission.metadata.privacyAuditJson == signedAudit else {
            let reason = "privacy_audit_json in the submit metadata is not signed; send it inside the set (metadata key privacy_audit) "
                + "and leave the field empty or equal to it"
            reject(node, reason: reason)
            throw RPCError(code: .invalidArgument, message: reason)
        }
        do { try await verifier.recordNonce(of: opened.envelope) } catch {
            reject(node, reason: error.description)
            throw error.rpcError
        }
        // The round may have closed while the envelope was being opened.
        guard machine.accepts(node) else {
            throw RPCError(code: .failedPrecondition, message: "round \(configuration.roundID) closed before the submission was stored")
        }
        let record = CoordinatorDatabase.Record(nodeID: node, roundID: configuration.roundID, digestHex: digest,
                                                bytes: submission.envelope.count, storedAtUnixSeconds: Int64(clock.now().timeIntervalSince1970),
                                                privacyAuditJSON: signedAudit)
        let stored: CoordinatorDatabase.Record
        do { stored = try database.store(envelope: submission.envelope, record: record) } catch let error as StoreError {
            if case .conflictingSubmission = error {
                reject(node, reason: error.description)
                throw RPCError(code: .alreadyExists, message: error.description)
            }
            logger.error("cannot store a submission", metadata: ["node.id": "\(PeerText.escaped(node))", "error": "\(error)"])
            throw RPCError(code: .unavailable, message: "the coordinator could not store the submission; retry")
        }
        metrics.storedSubmissions.increment()
        metrics.envelopeBytes.increment(by: stored.bytes)
        // A signed audit summary means the node's privacy gate ran and passed (a refusing gate sends nothing).
        let gate = signedAudit.isEmpty ? "off" : "passed"
        metrics.gate(gate)
        try? database.setNode(.init(nodeID: node, state: .submitted, gate: gate, atUnixSeconds: stored.storedAtUnixSeconds),
                              round: configuration.roundID)
        progress.advance(to: machine.submitted.count + 1)
        logger.info("submission stored", metadata: ["node.id": "\(PeerText.escaped(node))", "envelope.bytes": "\(stored.bytes)"])
        publish {
            $0.nodeSubmitted.nodeID = node
            $0.nodeSubmitted.envelopeDigest = Data(submission.digest)
        }
        act(machine.submissionStored(from: node, now: clock.now()))
        metrics.submissionsInRound.record(machine.submitted.count)
        return submission.receipt(storedAtUnixSeconds: stored.storedAtUnixSeconds)
    }

    /// Round events so far, then new ones until the round ends.
    func watch() -> AsyncStream<Feddistill_V1_RoundEvent> {
        let (stream, continuation) = AsyncStream<Feddistill_V1_RoundEvent>.makeStream()
        for event in events { continuation.yield(event) }
        if !isRunning {
            continuation.finish()
        } else {
            watchers[UUID()] = continuation
        }
        return stream
    }

    /// Records that `node`'s watch has written every event through the end of the round.
    func delivered(to node: String) {
        if !isRunning { informed.insert(node) }
    }

    /// The nodes that submitted in this round and have not yet received its outcome.
    var uninformedSubmitters: Set<String> { machine.submitted.subtracting(informed) }

    /// Whether the round has neither a result nor a failure yet.
    public var isRunning: Bool { result == nil && failure == nil && !concludedBeforeStart }

    /// Called periodically: applies the deadline.
    public func tick() { act(machine.tick(now: clock.now())) }

    /// Closes the round now (SIGUSR1): with the quorum it is merged, without it it fails.
    public func closeNow() {
        logger.notice("round closed early on request", metadata: ["round.id": "\(configuration.roundID)"])
        act(machine.closeNow())
    }

    /// Stops the round (the server is shutting down): waiters and watchers are released with a failure.
    public func cancel() {
        guard isRunning else { return }
        end(.failure(RoundFailure(reason: "the coordinator was stopped")))
    }

    /// Waits for the round's result (or failure).
    public func waitForResult() async throws -> RoundResult {
        if concludedBeforeStart {
            throw RoundAlreadyConcluded(roundID: configuration.roundID, failure: failure)
        }
        if let result { return result }
        if let failure { throw RoundFailure(reason: failure) }
        return try await withCheckedThrowingContinuation { finished.append($0) }
    }

    private func reject(_ node: String, reason: String) {
        metrics.rejectedSubmissions.increment()
        // Reasons quote what the peer sent; escaped and cut so that neither logs nor round events carry it raw.
        let safeReason = PeerText.escaped(reason, maxCharacters: 512)
        try? database.setNode(.init(nodeID: node, state: .rejected, detail: String(safeReason.prefix(200)),
                                    atUnixSeconds: Int64(clock.now().timeIntervalSince1970)), round: configuration.roundID)
        logger.info("submission rejected", metadata: ["node.id": "\(PeerText.escaped(node))", "reason": "\(safeReason)"])
        publish {
            $0.nodeRejected.nodeID = node
            $0.nodeRejected.reason = safeReason
        }
    }

    /// A node will not submit in this round (its privacy gate refused the set, or it cannot run the round's recipe with
    /// its settings; ``DeclineReason`` tells which): recorded, announced to watchers, and the
    /// round stops waiting for it. A node that already submitted cannot take its set back.
    func decline(node: String, roundID: UInt64, reason: String) throws {
        guard roundID == configuration.roundID else {
            throw RPCError(code: .failedPrecondition, message: "round \(roundID) is not the current round (\(configuration.roundID))")
        }
        guard isRunning, machine.accepts(node) else {
            throw RPCError(code: .failedPrecondition, message: "round \(configuration.roundID) is not accepting from this node")
        }
        guard !machine.submitted.contains(node) else {
            throw RPCError(code: .failedPrecondition, message: "this node's set is already stored in round \(configuration.roundID)")
        }
        let safeReason = PeerText.escaped(reason, maxCharacters: 200)
        let now = Int64(clock.now().timeIntervalSince1970)
        try database.nodeSeen(node, atUnixSeconds: now)
        // The gate column and metric count privacy-gate refusals only (the reason is the peer's text: a label, no more).
        let gateRefused = DeclineReason.isPrivacyGate(reason)
        try database.setNode(.init(nodeID: node, state: .declined, gate: gateRefused ? "refused" : "", detail: safeReason, atUnixSeconds: now),
                             round: configuration.roundID)
        if gateRefused { metrics.gate("refused") }
        logger.notice("node declined the round", metadata: ["node.id": "\(PeerText.escaped(node))", "reason": "\(safeReason)"])
        publish {
            $0.nodeRejected.nodeID = node
            $0.nodeRejected.reason = "declined: " + safeReason
        }
        act(machine.declined(by: node, now: clock.now()))
    }

    /// Sends a progress reading to the round's live watchers (not kept for replay: it is stale at once).
    func publishProgress(_ snapshot: ProgressBoard.Snapshot) {
        guard isRunning, !watchers.isEmpty else { return }
        var event = Feddistill_V1_RoundEvent()
        event.roundID = configuration.roundID
        event.atUnixSeconds = Int64(clock.now().timeIntervalSince1970)
        event.progress = snapshot.wire
        for continuation in watchers.values { continuation.yield(event) }
    }

    private func publish(_ fill: (inout Feddistill_V1_RoundEvent) -> Void) {
        var event = Feddistill_V1_RoundEvent()
        event.roundID = configuration.roundID
        event.atUnixSeconds = Int64(clock.now().timeIntervalSince1970)
        fill(&event)
        events.append(event)
        for continuation in watchers.values { continuation.yield(event) }
    }

    private func act(_ action: RoundStateMachine.Action) {
        switch action {
        case .none: return
        case let .close(submitted):
            logger.info("round closed", metadata: ["round.id": "\(configuration.roundID)", "submissions": "\(submitted.count)"])
            publish { $0.roundClosed.submissionCount = UInt32(submitted.count) }
            metrics.roundState.record(1)
            health.enter(.finalizing)
            persistState(.closed)
            let failures = Dictionary(uniqueKeysWithValues: Set(configuration.expectedNodes).subtracting(submitted).map {
                ($0, "no submission before the round closed")
            })
            finalizationContinuation.yield(FinalizationRequest(submitted: submitted, failures: failures))
        case let .fail(reason):
            logger.error("round failed", metadata: ["reason": "\(reason)"])
            metrics.roundState.record(3)
            metrics.roundsEnded(.failed)
            health.enter(.failed)
            persistState(.failed, failure: reason)
            end(.failure(RoundFailure(reason: reason)))
        }
    }

    /// Merges and evaluates a closed round and publishes the result (or the failure). Runs the work on a thread of its
    /// own; if the calling task is cancelled first (the coordinator shuts down), it returns at once, the round stays
    /// closed, and a restart finalises it again.
    public func finalize(_ request: FinalizationRequest) async {
        guard isRunning else { return }
        let (submitted, failures) = (request.submitted, request.failures)
        // Counted before it runs: a finalisation that takes the process down (out of memory, a bug) is retried after
        // a restart at most `maxFinalizationAttempts` times, then the round fails with that reason instead of looping.
        let attempt: Int
        do { attempt = try database.beginFinalization(round: configuration.roundID) } catch {
            fail(finalizing: "cannot record the finalisation attempt: \(error)")
            return
        }
        guard attempt <= configuration.maxFinalizationAttempts else {
            fail(finalizing: "finalisation started \(attempt - 1) times without completing (the process ended during it "
                 + "each time); the round is given up")
            return
        }
        let work = RoundFinalizer(configuration: configuration, descriptor: descriptor, store: database, opener: opener,
                                  progress: progress, logger: logger)
        do {
            guard let result = try await Self.unlessCancelled({ try work.run(submitted: submitted, failures: failures) }) else {
                // Shut down mid-finalisation: not an attempt that crashed; a restart finalises again.
                try? database.abandonFinalization(round: configuration.roundID)
                logger.notice("finalisation interrupted by shutdown; a restart finalises the round again")
                return
            }
            self.result = result
            progress.begin("done", total: 0)
            metrics.roundState.record(2)
            metrics.roundsEnded(.finished)
            health.enter(.finished)
            metrics.globalAccuracy.record(result.global.mean)
            for (phase, seconds) in result.phaseSeconds { metrics.phase(phase, seconds: seconds) }
            let report = String(decoding: result.json(maxBytes: configuration.maxReportBytes), as: UTF8.self)
            persistState(.finished, resultJSON: report)
            publish {
                $0.finalResult.accuracyMean = result.global.mean
                $0.finalResult.accuracyStd = result.global.standardDeviation
                $0.finalResult.reportJson = report
            }
            end(.success(result))
        } catch {
            fail(finalizing: "\(error)")
        }
    }

    private func fail(finalizing reason: String) {
        logger.error("round finalisation failed", metadata: ["error": "\(reason)"])
        metrics.roundState.record(3)
        metrics.roundsEnded(.failed)
        health.enter(.failed)
        persistState(.failed, failure: reason)
        end(.failure(RoundFailure(reason: reason)))
    }

    private func persistState(_ state: CoordinatorDatabase.RoundState, resultJSON: String? = nil, failure: String? = nil) {
        do {
            try database.setRoundState(id: configuration.roundID, state: state, resultJSON: resultJSON, failure: failure,
                                       now: Int64(clock.now().timeIntervalSince1970))
        } catch {
            logger.error("cannot record the round state", metadata: ["state": "\(state)", "error": "\(error)"])
        }
    }

    private func end(_ outcome: Result<RoundResult, any Error>) {
        if case let .failure(error) = outcome { failure = "\(error)" }
        finalizationContinuation.finish()
        for continuation in watchers.values { continuation.finish() }
        watchers.removeAll()
        for waiter in finished { waiter.resume(with: outcome) }
        finished.removeAll()
    }
}

/// The coordinator started on a round that had already ended and served its stored outcome until it was stopped
/// (``RoundCoordinator/concludedBeforeStart``); `failure` is the stored reason when the round had failed.
public struct RoundAlreadyConcluded: Error, CustomStringConvertible {
    public let roundID: UInt64
    public let failure: String?
    public var description: String {
        if let failure { return "round \(roundID) had failed before this start (\(failure)); served its status until stopped" }
        return "round \(roundID) had finished before this start; served its stored result until stopped"
    }
}

/// A round that could not complete.
public struct RoundFailure: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "round failed: \(reason)" }
}

extension RoundCoordinator {
    /// Runs `work` on a thread of its own (``Parallel/startThread(_:)``) and returns its result, or nil as soon as the calling task
    /// is cancelled (the thread then finishes on its own and its result is dropped).
    static func unlessCancelled<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T? {
        let waiter = OneShot<T?>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                waiter.arm(continuation)
                Parallel.startThread { waiter.resume(with: Result { try work() }) }
            }
        } onCancel: {
            waiter.resume(with: .success(nil))
        }
    }
}

/// A continuation resumed at most once, by whichever comes first; a resume before `arm` is kept for it.
final class OneShot<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, early: Result<T, any Error>?, done: Bool)>(
        (nil, nil, false))

    func arm(_ continuation: CheckedContinuation<T, any Error>) {
        let early: Result<T, any Error>? = state.withLock { state in
            if let early = state.early { state.done = true; return early }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func resume(with result: Result<T, any Error>) {
        let continuation: CheckedContinuation<T, any Error>? = state.withLock { state in
            guard !state.done else { return nil }
            guard let continuation = state.continuation else {
                if state.early == nil { state.early = result }
                return nil
            }
            state.done = true
            state.continuation = nil
            return continuation
        }
        continuation?.resume(with: result)
    }
}

