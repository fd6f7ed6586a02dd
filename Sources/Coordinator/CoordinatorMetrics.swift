import CoreMetrics
import Metrics

/// What the coordinator counts, through swift-metrics, into the factory it is given: ``CoordinatorServer`` passes a
/// Prometheus factory on the registry that ``MetricsHTTPServer`` serves when `--metrics-port` is set; otherwise
/// ``RoundCoordinator`` passes `MetricsSystem.factory`, a no-op unless the process bootstrapped one.
/// Labels carry outcomes and phases only: never node data, digests or keys.
struct CoordinatorMetrics: Sendable {
    let factory: any MetricsFactory
    let joins: Counter
    let storedSubmissions: Counter
    let duplicateSubmissions: Counter
    let rejectedSubmissions: Counter
    let envelopeBytes: Counter
    let submissionsInRound: Gauge
    /// 0 open, 1 closed (merging), 2 finished, 3 failed.
    let roundState: Gauge
    let globalAccuracy: Gauge
    /// The id of the round this process serves now.
    let roundID: Gauge

    init(factory: any MetricsFactory) {
        self.factory = factory
        joins = Counter(label: "feddistill_joins_total", factory: factory)
        storedSubmissions = Counter(label: "feddistill_submissions_total", dimensions: [("outcome", "stored")], factory: factory)
        duplicateSubmissions = Counter(label: "feddistill_submissions_total", dimensions: [("outcome", "duplicate")], factory: factory)
        rejectedSubmissions = Counter(label: "feddistill_submissions_total", dimensions: [("outcome", "rejected")], factory: factory)
        envelopeBytes = Counter(label: "feddistill_envelope_bytes_total", factory: factory)
        submissionsInRound = Gauge(label: "feddistill_round_submissions", factory: factory)
        roundState = Gauge(label: "feddistill_round_state", factory: factory)
        globalAccuracy = Gauge(label: "feddistill_global_accuracy", factory: factory)
        roundID = Gauge(label: "feddistill_round_id", factory: factory)
    }

    /// A round ended (finished or failed), counted by outcome.
    func roundsEnded(_ outcome: CoordinatorDatabase.RoundState) {
        Counter(label: "feddistill_rounds_total", dimensions: [("outcome", outcome.rawValue)], factory: factory).increment()
    }

    /// A node's privacy gate as the coordinator learns it: passed (a signed audit summary came with the set), refused
    /// (the node declined), off (a set without a summary).
    func gate(_ outcome: String) {
        Counter(label: "feddistill_gate_outcomes_total", dimensions: [("outcome", outcome)], factory: factory).increment()
    }

    func phase(_ name: String, seconds: Double) {
        Gauge(label: "feddistill_round_phase_seconds", dimensions: [("phase", name)], factory: factory).record(seconds)
    }
}
