import FederationProtocol
import Testing

@Suite(.timeLimit(.minutes(1)))
struct ThroughputTests {
    @Test func loopbackMeasurementUploadsThroughRealMutualTLS() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ca = try CertificateAuthority.create(in: directory.path)
        let server = try ca.issue(name: "coordinator", role: .coordinator(subjectAlternativeNames: [])).credentials
        let client = try ca.issue(name: "bench-node", role: .node).credentials
        let certificates = LoopbackThroughput.Certificates(server: server, client: client, nodeID: "bench-node")
        let measurement = try await LoopbackThroughput.measure(payloadBytes: 2_000_000, chunkBytes: 64 << 10,
                                                               certificates: certificates)
        #expect(measurement.seconds > 0)
        #expect(measurement.joinToReceiptSeconds >= measurement.seconds)
        #expect(abs(measurement.megabytesPerSecond - 2.0 / measurement.seconds) < 1e-6 * measurement.megabytesPerSecond)

        // A node certificate whose CN differs from the node id in the messages is refused.
        let wrongIdentity = LoopbackThroughput.Certificates(server: server, client: client, nodeID: "other-node")
        await #expect(throws: (any Error).self) {
            try await LoopbackThroughput.measure(payloadBytes: 1000, certificates: wrongIdentity)
        }
    }
}
