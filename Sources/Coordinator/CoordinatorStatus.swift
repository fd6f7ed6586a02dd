import FederationProtocol
import Foundation

extension RoundScheduler {
    /// The status answer: counters, the current round's phase and progress, the node table, the round history and
    /// the latest confusion matrix. `feddistill status`, `status --json` and the dashboard's `/api/status` all read it.
    public func status() async throws -> Feddistill_V1_StatusResponse {
        let database = shared.database
        let round = current
        let roundID = round.configuration.roundID
        let now = clock.now()
        var response = Feddistill_V1_StatusResponse()
        response.rounds = UInt64(try database.roundCount())
        response.nodes = UInt64(try database.nodeCount())
        response.submissions = UInt64(try database.submissionCount(round: roundID))
        response.currentRoundID = roundID
        response.phase = shared.health.snapshot.phase.wire
        response.scheduledRounds = UInt32(clamping: configuration.rounds)
        response.nowUnixSeconds = Int64(now.timeIntervalSince1970)
        let running = await round.isRunning
        if !running, let next = await nextRoundAt() {
            response.nextRoundAtUnixSeconds = Int64(next.timeIntervalSince1970)
            var waiting = Feddistill_V1_RoundProgress()
            waiting.step = "between-rounds"
            waiting.etaSeconds = max(next.timeIntervalSince(now), 0)
            response.progress = waiting
        } else if !running {
            var idle = Feddistill_V1_RoundProgress()
            idle.step = plan == .exit ? "schedule-done" : "waiting-for-operator"
            idle.etaSeconds = -1
            response.progress = idle
        } else {
            response.progress = shared.progress.snapshot.wire
        }
        response.nodeTable = try nodeTable(round: roundID)
        let stored = try database.rounds(limit: 100)
        var gates: [UInt64: [String: String]] = [:]
        for entry in stored {
            gates[entry.id] = try database.nodes(inRound: entry.id).compactMapValues { $0.gate.isEmpty ? nil : $0.gate }
        }
        response.history = stored.map { Self.summary($0, gates: gates[$0.id] ?? [:]) }
        if let latest = stored.first(where: { $0.state == .finished }),
           let global = Self.resultObject(latest)?["global"] as? [String: Any],
           let confusion = global["confusion"] as? [[Int]] {
            response.classCount = UInt32(confusion.count)
            response.confusion = confusion.flatMap { $0.map { UInt64(max($0, 0)) } }
        }
        return response
    }

    /// Every expected node and where it is in `round`.
    func nodeTable(round: UInt64) throws -> [Feddistill_V1_NodeStatus] {
        let database = shared.database
        let inRound = try database.nodes(inRound: round)
        let lastSeen = try database.nodesLastSeen()
        let records = Dictionary(try database.records(round: round).map { ($0.nodeID, $0) }, uniquingKeysWith: { first, _ in first })
        return configuration.expectedNodes.sorted().map { node in
            var status = Feddistill_V1_NodeStatus()
            status.nodeID = node
            status.lastSeenUnixSeconds = lastSeen[node] ?? 0
            if let entry = inRound[node] {
                status.state = switch entry.state {
                case .joined: .joined
                case .submitted: .submitted
                case .rejected: .rejected
                case .declined: .declined
                }
                status.gate = entry.gate
                status.detail = entry.detail
            } else {
                status.state = records[node] == nil ? .registered : .submitted
            }
            if let record = records[node] {
                status.envelopeBytes = UInt64(record.bytes)
                status.state = .submitted
            }
            return status
        }
    }

    static func resultObject(_ round: CoordinatorDatabase.Round) -> [String: Any]? {
        guard let json = round.resultJSON else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
    }

    /// One history entry from the stored round and its result report.
    static func summary(_ round: CoordinatorDatabase.Round, gates: [String: String]) -> Feddistill_V1_RoundSummary {
        var summary = Feddistill_V1_RoundSummary()
        summary.roundID = round.id
        summary.phase = switch round.state {
        case .open: .open
        case .closed: .finalizing
        case .finished: .finished
        case .failed: .failed
        }
        summary.openedAtUnixSeconds = round.openedAtUnixSeconds
        summary.endedAtUnixSeconds = round.endedAtUnixSeconds ?? 0
        summary.failure = round.failure ?? ""
        summary.configurationJson = round.configurationJSON ?? ""
        summary.gates = gates
        guard let result = resultObject(round) else { return summary }
        if let global = result["global"] as? [String: Any] {
            summary.accuracyMean = global["accuracy_mean"] as? Double ?? 0
            summary.accuracyStd = global["accuracy_std"] as? Double ?? 0
            summary.perClassAccuracy = global["per_class"] as? [Double] ?? []
        }
        summary.participants = (result["nodes"] as? [[String: Any]] ?? []).filter { $0["submitted"] as? Bool == true }
            .compactMap { $0["id"] as? String }
        summary.phaseSeconds = result["phase_seconds"] as? [String: Double] ?? [:]
        for (name, report) in result["baselines"] as? [String: Any] ?? [:] {
            if let mean = (report as? [String: Any])?["accuracy_mean"] as? Double { summary.baselines[name] = mean }
        }
        summary.globalSetSha256 = result["global_set_sha256"] as? String ?? ""
        return summary
    }
}
