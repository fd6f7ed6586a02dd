import CoreMetrics
import Metrics

/// What the coordinator counts, through swift-metrics. The `feddistill` executable bootstraps a Prometheus backend
/// when `--metrics-port` is set (served by ``MetricsHTTPServer``); without it these are no-ops.
/// Labels carry outcomes and phases only: never node data, digests or keys.
struct CoordinatorMetrics: Sendable {
    let joins = Counter(label: "feddistill_joins_total")
    let storedSubmissions = Counter(label: "feddistill_submissions_total", dimensions: [("outcome", "stored")])
    let duplicateSubmissions = Counter(label: "feddistill_submissions_total", dimensions: [("outcome", "duplicate")])
    let rejectedSubmissions = Counter(label: "feddistill_submissions_total", dimensions: [("outcome", "rejected")])
    let refusedCalls = Counter(label: "feddistill_refused_calls_total")
    let envelopeBytes = Counter(label: "feddistill_envelope_bytes_total")
    let submissionsInRound = Gauge(label: "feddistill_round_submissions")
    /// 0 open, 1 closed (merging), 2 finished, 3 failed.
    let roundState = Gauge(label: "feddistill_round_state")
    let globalAccuracy = Gauge(label: "feddistill_global_accuracy")

    func phase(_ name: String, seconds: Double) {
        Gauge(label: "feddistill_round_phase_seconds", dimensions: [("phase", name)]).record(seconds)
    }
}
