import Coordinator
import Foundation
import Logging
import Node
import Testing

extension Tag {
    /// Starts real processes or a browser; runs in the slow lane (`make test-slow`), not in `make test`.
    @Tag static var endToEnd: Self
}

/// The dashboard in a real browser: a small round on digits, the page opened in headless Chromium (Debian's
/// `chromium`, installed by `scripts/install-deps.sh --browser`) before and after the nodes run. The DOM Chromium
/// renders must show the node ids and the open phase first, then the finished phase, the round in the history and
/// the global set's image loaded. Set FEDDISTILL_DASHBOARD_SCREENSHOT=PATH to keep a screenshot of the finished round.
@Suite("Dashboard in a browser", .serialized, .tags(.endToEnd))
struct DashboardBrowserTests {
    let harness = FederatedRoundTests()

    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Runs headless Chromium on `url` and returns its stdout (the DOM after the scripts ran, with --dump-dom).
    static func chromium(_ arguments: [String], url: String) throws -> String {
        let executable = try #require(chromium, "headless Chromium is missing: run scripts/install-deps.sh --browser")
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-chromium-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: profile) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start. The page is our own, on loopback.
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                             "--user-data-dir=\(profile)", "--virtual-time-budget=4000", "--run-all-compositor-stages-before-draw"]
            + arguments + [url]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "chromium exited with \(process.terminationStatus)")
        return String(decoding: data, as: UTF8.self)
    }

    @Test(.timeLimit(.minutes(3))) func theDashboardShowsTheNodesThePhaseAndTheGlobalSet() async throws {
        defer { try? FileManager.default.removeItem(atPath: harness.root) }
        let nodes = ["node-a", "node-b"]
        try harness.provision(nodes: nodes)
        let logger = Logger(label: "test")
        var configuration = harness.coordinatorConfiguration(nodes: nodes)
        configuration.exitAfterRound = false
        configuration.dashboardPort = 0
        try await harness.withCoordinator(configuration, logger: logger) { port, dashboard in
            let url = "http://127.0.0.1:\(try #require(dashboard))/"

            // Open: every registered node is listed, nothing finished yet.
            let before = try Self.chromium(["--dump-dom"], url: url)
            #expect(before.contains("id=\"phase\" class=\"phase open\""), "the open phase is shown")
            for node in nodes { #expect(before.contains("data-node=\"\(node)\""), "\(node) is in the node table") }
            #expect(before.contains("no finished round yet"))

            try await withThrowingTaskGroup(of: NodeReport.self) { nodesGroup in
                for (index, node) in nodes.enumerated() {
                    var node = harness.nodeConfiguration(node, index: index, port: port)
                    node.privacyGate = false
                    let runner = NodeRunner(configuration: node, logger: logger)
                    nodesGroup.addTask { try await runner.run() }
                }
                for try await report in nodesGroup { #expect(report.globalAccuracyMean != nil) }
            }

            // Finished: the page updated itself — phase, submitted nodes, the round in the history, the image loaded.
            let after = try Self.chromium(["--dump-dom"], url: url)
            #expect(after.contains("id=\"phase\" class=\"phase finished\""), "the finished phase is shown")
            #expect(after.contains("<tr data-round=\"1\">"), "round 1 is in the history")
            #expect(after.components(separatedBy: "class=\"state-submitted\"").count - 1 == nodes.count, "both nodes submitted")
            #expect(after.contains("data-loaded=\"true\""), "the global set's grid loaded")
            #expect(after.contains("<circle"), "the accuracy plot has a point")
            if let path = ProcessInfo.processInfo.environment["FEDDISTILL_DASHBOARD_SCREENSHOT"] {
                _ = try Self.chromium(["--screenshot=\(path)", "--window-size=1400,1900", "--hide-scrollbars"], url: url)
                #expect(FileManager.default.fileExists(atPath: path))
            }
        }
    }
}
