import FederationProtocol
import Testing
@testable import Coordinator

@Suite("Coordinator health")
struct CoordinatorHealthTests {
    @Test func statusesFollowListeningPhaseAndShutdown() {
        let health = CoordinatorHealth(roundID: 7, phase: .open)
        #expect(health.snapshot == .init(serving: false, phase: .open, roundID: 7))
        #expect(health.board.statuses.values.allSatisfy { $0 == .notServing }, "nothing is SERVING before the server listens")
        health.listening()
        #expect(health.board.statuses == ["": .serving, "feddistill.v1.Federation": .serving, "feddistill.round": .serving])
        for phase in [CoordinatorHealth.Phase.finalizing, .finished, .failed] {
            health.enter(phase)
            #expect(health.board.status(of: "") == .serving, "the server serves in phase \(phase)")
            #expect(health.board.status(of: "feddistill.round") == .notServing, "no submissions in phase \(phase)")
        }
        health.stopping()
        #expect(!health.snapshot.serving)
        #expect(health.board.statuses.values.allSatisfy { $0 == .notServing })
    }

    @Test func aRoundRestartedWhileMergingStartsFinalizing() {
        let health = CoordinatorHealth(roundID: 2, phase: .finalizing)
        health.listening()
        #expect(health.board.status(of: "feddistill.round") == .notServing)
        #expect(health.snapshot.phase == .finalizing)
    }
}
