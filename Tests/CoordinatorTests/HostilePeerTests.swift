@testable import Distill
import FederationProtocol
import Dispatch
import Foundation
import GRPCCore
import Logging
import Synchronization
import Testing
@testable import Coordinator

/// What a registered node that turns hostile can send, checked below the network: every case is refused with a
/// reason, and a set that opens can always be merged.
@Suite("Hostile peers")
struct HostilePeerTests {
    let sealing = try! SealingKeys(secretKey: [UInt8](repeating: 0x31, count: 32))
    let signer = try! SigningKeys(seed: [UInt8](repeating: 0x42, count: 32))

    func opener(maxImagesPerClass: Int = 10) -> SubmissionOpener {
        let verifier = EnvelopeVerifier(federationID: "fed", recipientKeys: sealing, nodeSigningKeys: ["node-a": signer.publicKey],
                                        replayStore: InMemoryReplayStore())
        return SubmissionOpener(verifier: verifier, roundID: 4, descriptor: DatasetCatalog.digits, maxImagesPerClass: maxImagesPerClass)
    }

    func sealed(_ payload: [UInt8], node: String = "node-a", round: UInt64 = 4) throws -> [UInt8] {
        try SealedEnvelope.seal(payload: payload, recipient: sealing.publicKey, signer: signer,
                                header: EnvelopeHeader(federationID: "fed", roundID: round, nodeID: node)).serialized()
    }

    func digitsSet(counts: [Int] = [9, 9, 9, 9, 9, 9, 9, 9, 9, 9], ipc: Int = 2) -> SyntheticSet {
        var rng = RandomSource(seed: 9)
        let labels = (0..<10).flatMap { [Int](repeating: $0, count: ipc) }
        let data = LabeledImages(images: .normal([labels.count, 1, 8, 8], using: &rng), labels: labels, classCount: 10)
        return SyntheticSet(data: data, metadata: .init(
            dataset: "digits", imageShape: [1, 8, 8], classCount: 10, normalization: DatasetCatalog.digits.normalization,
            method: "dm", imagesPerClass: ipc, iterations: 1, initialization: "noise", seed: 0, sourceClassCounts: counts))
    }

    /// A set's bytes with one metadata entry replaced (nil removes it).
    func patched(_ set: SyntheticSet, _ key: String, _ value: String?) throws -> [UInt8] {
        var (entries, strings) = try SafeTensors.decode(set.encoded(), path: "s")
        strings[key] = value
        return SafeTensors.encode(entries, metadata: strings)
    }

    func refusal(_ bytes: [UInt8], opener: SubmissionOpener? = nil) -> SubmissionOpener.Failure? {
        do {
            _ = try (opener ?? self.opener()).open(bytes, from: "node-a")
            return nil
        } catch { return error }
    }

    @Test func aValidSetOpensAndCarriesItsSignedAudit() throws {
        var set = digitsSet()
        set.metadata.privacyAudit = #"{"verdict":"pass"}"#
        let opened = try opener().open(try sealed(set.encoded()), from: "node-a")
        #expect(opened.set.metadata.privacyAudit == #"{"verdict":"pass"}"#)
        #expect(opened.set.data.count == 20)
    }

    @Test func hostileSetsAreRefusedWithAReason() throws {
        let set = digitsSet()
        let header = #"{"t":{"dtype":"F32","shape":[2147483647,2147483647,4],"data_offsets":[0,4]}}"#
        let overflowing = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) } + Array(header.utf8) + [0, 0, 0, 0]
        let cases: [([UInt8], String)] = [
            (overflowing, "needs more bytes"),
            (try patched(set, "source_class_counts", "[9223372036854775807,1,1,1,1,1,1,1,1,1]"), "source_class_counts"),
            (try patched(set, "dataset", "mnist"), "the round is on digits"),
            (try patched(set, "ipc", "50"), "at most 10"),
            (try patched(set, "normalization_mean", "[0.9]"), "normalisation"),
            (try patched(set, "privacy_audit", "{\"v\":\"\\u001b[2J\"}"), "control characters"),
        ]
        for (payload, fragment) in cases {
            let failure = refusal(try sealed(payload))
            #expect(failure != nil, "accepted: \(fragment)")
            if let failure {
                #expect(failure.description.contains(fragment), "\(failure)")
                #expect(failure.rpcError.code == .invalidArgument)
            }
        }
        // The envelope's own checks still come first.
        let otherRound = refusal(try sealed(set.encoded(), round: 5))
        #expect(otherRound.map { $0.rpcError.code } == .failedPrecondition || otherRound.map { $0.rpcError.code } == .invalidArgument)
    }

    @Test func theLargestCountsASetMayDeclareStillMerge() throws {
        let maximum = Int(SyntheticSet.Metadata.maximumSourceCount)
        let submissions = (0..<1000).map { NodeSubmission(nodeID: "n\($0)", set: digitsSet(counts: [Int](repeating: maximum, count: 10))) }
        let total = UnionMerge.totalCounts(submissions, classes: 10)
        #expect(total == [Int](repeating: 1000 * maximum, count: 10))
    }

    @Test func oneUploadPerNodeAndABoundOnBytesInFlight() async throws {
        let admission = SubmissionAdmission(maxBytesInFlight: 1000)
        try await admission.begin(node: "a")
        await #expect(throws: RPCError.self) { try await admission.begin(node: "a") }
        try await admission.reserve(600, for: "a")
        try await admission.begin(node: "b")
        do {
            try await admission.reserve(500, for: "b")
            Issue.record("reserved past the budget")
        } catch {
            #expect(error.code == .resourceExhausted && error.message.contains("retry"))
        }
        try await admission.reserve(400, for: "b")
        #expect(await admission.bytesInFlight == 1000)
        await admission.end(node: "a")
        #expect(await admission.bytesInFlight == 400)
        try await admission.begin(node: "a")
        await admission.end(node: "a")
        await admission.end(node: "b")
        #expect(await admission.bytesInFlight == 0)
        // The wrapper releases on failure too.
        await #expect(throws: RPCError.self) {
            try await admission.upload(node: "c") { reserve in try await reserve(5000) }
        }
        #expect(await admission.bytesInFlight == 0)
        try await admission.upload(node: "c") { reserve in try await reserve(10) }
    }

    @Test func theReportStaysWithinItsBoundWhateverNodesSend() throws {
        let audit = "{\"x\":\"" + String(repeating: "a", count: 15_000) + "\"}"
        let nodes = (0..<2000).map {
            RoundResult.Node(id: "node-\($0)", submitted: true, bytesSent: 1, images: 10, privacyAuditJSON: audit,
                             failure: String(repeating: "f", count: 1000))
        }
        let report = SetEvaluation.Report(accuracies: [0.9], perClass: [0.9], confusion: [[1]], seconds: 1)
        let result = RoundResult(roundID: 1, global: report, baselines: [:], nodes: nodes, phaseSeconds: [:], globalSetPath: "g")
        #expect(result.json().count > 16 << 20, "the whole report would not reach the nodes")
        for limit in [4 << 20, 64 << 10] {
            let bounded = result.json(maxBytes: limit)
            #expect(bounded.count <= limit)
            let object = try JSONSerialization.jsonObject(with: bounded) as? [String: Any]
            #expect(object?["truncated"] != nil && object?["node_count"] as? Int == 2000)
        }
    }

    @Test func configurationErrorsNameTheKey() {
        var configuration = CoordinatorConfiguration()
        configuration.expectedNodes = ["a", "b"]
        configuration.quorum = 2
        #expect(throws: Never.self) { try configuration.validate() }
        let broken: [(String, (inout CoordinatorConfiguration) -> Void)] = [
            ("quorum", { $0.quorum = 3 }), ("quorum", { $0.quorum = 0 }), ("expected_nodes", { $0.expectedNodes = ["a", "a"] }),
            ("port", { $0.port = 70000 }), ("max_report_bytes", { $0.maxReportBytes = 64 << 20 }),
            ("max_images_per_class", { $0.maxImagesPerClass = 1 }), ("width", { $0.width = 0 }),
            ("deadline_seconds", { $0.deadlineSeconds = .nan }),
        ]
        for (key, change) in broken {
            var bad = configuration
            change(&bad)
            #expect(throws: ConfigurationError.self, "\(key)") { try bad.validate() }
            do { try bad.validate() } catch { #expect(error.key == key) }
        }
    }

    @Test func finalisationAttemptsAreCountedDurably() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-attempts-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let database = try CoordinatorDatabase(stateDirectory: directory)
            _ = try database.openRound(id: 3, now: 0, deadline: 10)
            #expect(try database.beginFinalization(round: 3) == 1)
        }
        let reopened = try CoordinatorDatabase(stateDirectory: directory)
        #expect(try reopened.beginFinalization(round: 3) == 2)
        #expect(try reopened.round(id: 3)?.finalizationAttempts == 2)
    }
}

/// The round's shell with an injected clock: deadlines and the finalisation crash-loop breaker, without waiting.
@Suite("Round shell")
struct RoundShellTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-shell-\(UUID().uuidString)").path

    final class ManualClock: Sendable {
        let seconds = Mutex(1_000_000.0)
        var clock: RoundClock { RoundClock { [self] in Date(timeIntervalSince1970: seconds.withLock { $0 }) } }
        func advance(by delta: Double) { seconds.withLock { $0 += delta } }
    }

    func configuration() throws -> CoordinatorConfiguration {
        let credentials = directory + "/certs"
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)
        for name in ["coordinator", "a", "b"] { try KeyFiles.generate(in: credentials, name: name) }
        var configuration = CoordinatorConfiguration()
        configuration.stateDirectory = directory + "/state"
        configuration.credentialsDirectory = credentials
        configuration.expectedNodes = ["a", "b"]
        configuration.quorum = 2
        configuration.deadlineSeconds = 60
        return configuration
    }

    @Test func theDeadlineFollowsTheInjectedClock() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let time = ManualClock()
        let round = try RoundCoordinator(configuration: try configuration(), logger: Logger(label: "test"), clock: time.clock)
        try await round.resume()
        time.advance(by: 59)
        await round.tick()
        #expect(await round.isRunning, "a second before the deadline the round is open")
        time.advance(by: 2)
        await round.tick()
        await #expect(throws: RoundFailure.self) { try await round.waitForResult() }
        let stored = try CoordinatorDatabase(stateDirectory: directory + "/state").round(id: 1)
        #expect(stored?.state == .failed && stored?.failure?.contains("deadline passed with 0 of 2 submissions") == true)
    }

    /// A round that ended before this start: refused when the coordinator exits after its round (start a new round
    /// id); served, without running anything, when it keeps serving (an orchestrator's restart).
    @Test func aRoundThatEndedEarlierIsRefusedOrServedAsConfigured() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = try configuration()
        do {
            let database = try CoordinatorDatabase(stateDirectory: configuration.stateDirectory)
            _ = try database.openRound(id: 1, now: 0, deadline: 60)
            try database.setRoundState(id: 1, state: .failed, failure: "deadline passed with 0 of 2 submissions (quorum 2)")
        }
        #expect(throws: RoundFailure.self) { _ = try RoundCoordinator(configuration: configuration, logger: Logger(label: "test")) }
        configuration.exitAfterRound = false
        let round = try RoundCoordinator(configuration: configuration, logger: Logger(label: "test"))
        #expect(round.concludedBeforeStart)
        #expect(round.health.snapshot.phase == .failed)
        try await round.resume()
        #expect(await !round.isRunning)
        await #expect(throws: RoundAlreadyConcluded.self) { try await round.waitForResult() }
        var requests = round.finalizationRequests.makeAsyncIterator()
        #expect(await requests.next() == nil, "nothing is finalised again")
    }

    /// A round saved as closed whose finalisation already started `maxFinalizationAttempts` times (each ended by a
    /// crash) fails with that reason on the next start instead of crashing again.
    @Test func aFinalisationCrashLoopEndsInARecordedFailure() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = try configuration()
        do {
            let database = try CoordinatorDatabase(stateDirectory: configuration.stateDirectory)
            _ = try database.openRound(id: 1, now: 0, deadline: Int64(Date().timeIntervalSince1970) + 3600)
            for node in ["a", "b"] {
                _ = try database.store(envelope: [1, 2, 3], record: .init(nodeID: node, roundID: 1, digestHex: node, bytes: 3,
                                                                        storedAtUnixSeconds: 0, privacyAuditJSON: ""))
            }
            try database.setRoundState(id: 1, state: .closed)
            for _ in 0..<configuration.maxFinalizationAttempts { _ = try database.beginFinalization(round: 1) }
        }
        let round = try RoundCoordinator(configuration: configuration, logger: Logger(label: "test"))
        try await round.resume()
        var requests = round.finalizationRequests.makeAsyncIterator()
        let request = try #require(await requests.next(), "a closed round asks to be finalised again")
        await round.finalize(request)
        await #expect(throws: RoundFailure.self) { try await round.waitForResult() }
        let stored = try CoordinatorDatabase(stateDirectory: configuration.stateDirectory).round(id: 1)
        #expect(stored?.state == .failed && stored?.failure?.contains("given up") == true, "\(String(describing: stored))")
        #expect(await requests.next() == nil, "the request stream ends with the round")
    }

    @Test func cancellingTheWaitReturnsAtOnceAndTheWorkIsDropped() async throws {
        let gate = DispatchSemaphore(value: 0)
        let task = Task {
            try await RoundCoordinator.unlessCancelled { () -> Int in
                gate.wait()  // the work cannot finish before the test lets it
                return 7
            }
        }
        task.cancel()
        #expect(try await task.value == nil)
        gate.signal()
        #expect(try await RoundCoordinator.unlessCancelled { 3 } == 3)
    }
}
