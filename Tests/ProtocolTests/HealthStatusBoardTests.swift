import FederationProtocol
import Testing

@Suite("Health status board")
struct HealthStatusBoardTests {
    @Test func watchersSeeTheStatusNowThenEachChangeOnce() async {
        let board = HealthStatusBoard(["": .serving, "round": .serving])
        var updates = board.updates(of: "round").makeAsyncIterator()
        #expect(await updates.next() == .serving)
        board.set("round", .serving)  // no change: nothing sent
        board.set("", .notServing)  // another service: nothing sent
        board.set("round", .notServing)
        #expect(await updates.next() == .notServing)
        #expect(board.statuses == ["": .notServing, "round": .notServing])
    }

    @Test func anUnknownNameIsNilUntilItIsSet() async {
        let board = HealthStatusBoard(["": .serving])
        #expect(board.status(of: "later") == nil)
        var updates = board.updates(of: "later").makeAsyncIterator()
        #expect(await updates.next() == .some(nil), "SERVICE_UNKNOWN first")
        board.set("later", .serving)
        #expect(await updates.next() == .serving)
    }

    @Test func closingReportsNotServingEndsWatchesAndFreezesTheBoard() async {
        let board = HealthStatusBoard(["": .serving, "round": .serving])
        var updates = board.updates(of: "").makeAsyncIterator()
        #expect(await updates.next() == .serving)
        board.close()
        #expect(await updates.next() == .notServing)
        #expect(await updates.next() == nil, "the watch ends, so it cannot hold a graceful shutdown")
        board.set("", .serving)
        #expect(board.status(of: "") == .notServing, "a closed board stays NOT_SERVING")
        var late = board.updates(of: "round").makeAsyncIterator()
        #expect(await late.next() == .notServing)
        #expect(await late.next() == nil)
    }
}
