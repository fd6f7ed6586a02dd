import ArgumentParser
import Distill
import FederationProtocol
import Foundation

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure sgemm and ConvNet throughput on this machine.",
        discussion: """
            Reports (a) the sgemm rate on the ConvNet-3 convolution shapes, (b) ConvNet-3 forward, forward+backward \
            to the parameters and forward+backward to the input for 3x32x32 and 1x28x28 batches, as images/s and \
            GFLOP/s, and (c) their efficiency against (a). Build with -c release for meaningful numbers.
            """)

    @Option(help: "Batch size.") var batch = 256
    @Option(help: "ConvNet width.") var width = 128
    @Option(help: "Timed repetitions per case (best is reported).") var repeats = 3
    @Option(help: "Also measure these architectures (comma-separated, as evaluate --arch; reference widths) on MNIST-shaped batches.")
    var arch: String?
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Flag(help: "Measure loopback Submit throughput over mutual TLS (5 MB and 50 MB sets) instead of compute.")
    var `protocol` = false
    @Flag(help: "Load-test a coordinator process: --nodes lightweight protocol clients (real mTLS and sealed sets, no distillation) join, submit and watch one round.")
    var federation = false
    @Option(help: "--federation: number of nodes.") var nodes = 100
    @Option(help: "--federation: images per class in each node's set (digits, 1×8×8).") var ipc = 10
    @Option(help: "--federation: SIGKILL and restart the coordinator this many times while submissions arrive.") var kills = 0
    @Option(name: .customLong("max-attempts"), help: "--federation: attempts per call before a client gives up.") var maxAttempts = 20
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard batch > 0, width > 0, repeats > 0 else { throw ValidationError("--batch, --width and --repeats must be positive") }
        _ = try architectures()
        guard nodes >= 1, nodes <= 10_000, (1...100).contains(ipc), kills >= 0, maxAttempts >= 1 else {
            throw ValidationError("--nodes must be in 1...10000, --ipc in 1...100, --kills ≥ 0 and --max-attempts ≥ 1")
        }
    }

    func architectures() throws -> [Architecture] {
        guard let arch else { return [] }
        return try arch.split(separator: ",", omittingEmptySubsequences: false).map { name in
            guard let architecture = Architecture(name: name.trimmingCharacters(in: .whitespaces)), architecture != .convnet else {
                throw ValidationError("unknown or ConvNet architecture '\(name.prefix(40))' in --arch (the ConvNet is always measured)")
            }
            return architecture
        }
    }

    func run() async throws {
        if `protocol` { return try await runProtocol() }
        if federation { return try await runFederation() }
        compute.apply()
        let inputs = [[3, 32, 32], [1, 28, 28]]
        let reference = ConvNet.Configuration(imageShape: inputs[0], classCount: 10, width: width)
        let sgemm = ComputeBenchmark.sgemmRate(reference, batch: batch, repeats: repeats)
        var cases: [ComputeBenchmark.Case] = []
        for shape in inputs {
            let configuration = ConvNet.Configuration(imageShape: shape, classCount: 10, width: width)
            for pass in ComputeBenchmark.Pass.allCases {
                cases.append(ComputeBenchmark.measure(configuration, batch: batch, pass: pass, repeats: repeats))
            }
        }
        for architecture in try architectures() {
            for pass in [ComputeBenchmark.Pass.forward, .backwardToParameters] {
                do {
                    cases.append(try ComputeBenchmark.measure(architecture, imageShape: inputs[1], batch: batch, pass: pass,
                                                              repeats: repeats))
                } catch { throw CommandFailure("\(error)") }
            }
        }
        if json {
            try writeJSON([
                "sgemm_gflops": sgemm, "threads": Parallel.threads, "batch": batch,
                "cases": cases.map { ["name": $0.name, "seconds": $0.seconds, "images_per_second": $0.imagesPerSecond,
                                      "gflops": $0.gflops, "efficiency": $0.gflops / sgemm] },
            ], to: "-")
            return
        }
        print(String(format: "sgemm on ConvNet-3 conv shapes (batch %d, %d threads): %.1f GFLOP/s", batch, Parallel.threads, sgemm))
        print("case".padding(52) + "seconds".padding(10) + "images/s".padding(10) + "GFLOP/s".padding(9) + "efficiency")
        for c in cases {
            print(c.name.padding(52) + String(format: "%.3f", c.seconds).padding(10) + String(format: "%.0f", c.imagesPerSecond).padding(10)
                  + String(format: "%.1f", c.gflops).padding(9) + String(format: "%.0f%%", 100 * c.gflops / sgemm))
        }
    }

    /// Join → Submit → receipt over mutual TLS on 127.0.0.1 with throwaway certificates.
    private func runProtocol() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var rows: [[String: Any]] = []
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let ca = try CertificateAuthority.create(in: directory, commonName: "bench CA")
            let server = try ca.issue(name: "coordinator", role: .coordinator(subjectAlternativeNames: CertificateAuthority.defaultCoordinatorNames))
            let client = try ca.issue(name: "bench-node", role: .node)
            let certificates = LoopbackThroughput.Certificates(server: server.credentials, client: client.credentials, nodeID: "bench-node")
            for megabytes in [5, 50] {
                var best: LoopbackThroughput.Measurement?
                for _ in 0..<repeats {
                    let m = try await LoopbackThroughput.measure(payloadBytes: megabytes * 1_000_000, certificates: certificates)
                    if best == nil || m.megabytesPerSecond > best!.megabytesPerSecond { best = m }
                }
                if let best {
                    rows.append(["payload_mb": megabytes, "megabytes_per_second": best.megabytesPerSecond, "seconds": best.seconds,
                                 "join_to_receipt_seconds": best.joinToReceiptSeconds])
                }
            }
        } catch { throw CommandFailure(error) }
        if json { return try writeJSON(["submit": rows], to: "-") }
        print("loopback Submit over mutual TLS, 1 MiB chunks, best of \(repeats)")
        for row in rows {
            print(String(format: "%3d MB: %6.1f MB/s, Join → receipt %.3f s", row["payload_mb"] as? Int ?? 0,
                         row["megabytes_per_second"] as? Double ?? 0, row["join_to_receipt_seconds"] as? Double ?? 0))
        }
    }
}
