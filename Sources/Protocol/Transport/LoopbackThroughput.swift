import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Upload throughput of the real protocol stack on loopback: an mTLS gRPC server on 127.0.0.1 with an
/// in-memory sink, and a client that joins and submits one envelope-sized payload in chunks.
public enum LoopbackThroughput {
    /// The result of one measurement.
    public struct Measurement: Sendable {
        /// Seconds from the first `Submit` chunk to the receipt.
        public var seconds: Double
        /// Payload megabytes (10⁶ bytes) per second of `seconds`.
        public var megabytesPerSecond: Double
        /// Seconds from the start of `Join` to the receipt (includes the TLS handshake).
        public var joinToReceiptSeconds: Double
    }

    /// Certificates for the measurement: the server's (with SAN 127.0.0.1) and a node's.
    public struct Certificates: Sendable {
        /// The coordinator's credentials.
        public var server: TLSCredentials
        /// A node's credentials; its CN is the node id used in the messages.
        public var client: TLSCredentials
        /// The node id in `client`'s certificate.
        public var nodeID: String

        /// Creates the pair.
        /// - Parameters:
        ///   - server: Coordinator credentials.
        ///   - client: Node credentials.
        ///   - nodeID: The node id the client certificate names.
        public init(server: TLSCredentials, client: TLSCredentials, nodeID: String) {
            self.server = server
            self.client = client
            self.nodeID = nodeID
        }
    }

    /// Runs one upload of `payloadBytes` random bytes in chunks of `chunkBytes` and times it.
    /// - Parameters:
    ///   - payloadBytes: Size of the uploaded envelope.
    ///   - chunkBytes: Chunk size (clamped to `EnvelopeChunking.chunkBytesRange`).
    ///   - certificates: mTLS credentials for both ends.
    /// - Returns: Timings.
    /// - Throws: If the server cannot start or the upload fails.
    public static func measure(
        payloadBytes: Int, chunkBytes: Int = EnvelopeChunking.defaultChunkBytes, certificates: Certificates
    ) async throws -> Measurement {
        var payload = [UInt8](repeating: 0, count: payloadBytes)
        var generator = SystemRandomNumberGenerator()
        for i in stride(from: 0, to: payloadBytes, by: 8) {
            let word = generator.next() as UInt64
            for j in 0..<min(8, payloadBytes - i) { payload[i + j] = UInt8(truncatingIfNeeded: word >> (8 * j)) }
        }
        let sink = SinkService(maxEnvelopeBytes: payloadBytes + 1)
        let transport = FederationTransport.server(host: "127.0.0.1", port: 0, credentials: certificates.server)
        let server = GRPCServer(transport: transport, services: [sink])
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            guard let port = try await server.listeningAddress?.ipv4?.port else {
                throw RPCError(code: .unavailable, message: "loopback server did not start listening")
            }
            let clientTransport = try FederationTransport.client(
                host: "127.0.0.1", port: port, credentials: certificates.client)
            let result = try await withGRPCClient(transport: clientTransport) { client in
                let federation = Feddistill_V1_Federation.Client(wrapping: client)
                let started = ContinuousClock.now
                var join = Feddistill_V1_JoinRequest()
                join.nodeID = certificates.nodeID
                join.protocolVersion = ProtocolVersion.current
                let response = try await federation.join(join)
                var metadata = SubmitMetadata()
                metadata.roundID = response.round.roundID
                metadata.nodeID = certificates.nodeID
                let submitStarted = ContinuousClock.now
                _ = try await federation.submitEnvelope(payload, metadata: metadata, chunkBytes: chunkBytes)
                let finished = ContinuousClock.now
                let seconds = (finished - submitStarted).seconds
                return Measurement(seconds: seconds, megabytesPerSecond: Double(payloadBytes) / 1e6 / seconds,
                                   joinToReceiptSeconds: (finished - started).seconds)
            }
            group.cancelAll()
            return result
        }
    }
}

extension Duration {
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) * 1e-18
    }
}

/// The measurement's server: `Join` hands out a fixed round, `Submit` keeps the envelope in memory.
private final class SinkService: Feddistill_V1_Federation.SimpleServiceProtocol {
    let maxEnvelopeBytes: Int
    let received = Mutex<(submissions: Int, bytes: Int)>((0, 0))

    init(maxEnvelopeBytes: Int) { self.maxEnvelopeBytes = maxEnvelopeBytes }

    func join(request: Feddistill_V1_JoinRequest, context: ServerContext) async throws -> Feddistill_V1_JoinResponse {
        try PeerIdentity.requireNode(request.nodeID, context: context)
        var response = Feddistill_V1_JoinResponse()
        response.round.roundID = 1
        response.round.federationID = "loopback-throughput"
        return response
    }

    func submit(
        request: RPCAsyncSequence<Feddistill_V1_SubmitChunk, any Error>, context: ServerContext
    ) async throws -> Feddistill_V1_Receipt {
        let submission = try await SubmissionReceiver.receive(request, context: context,
                                                               maxEnvelopeBytes: maxEnvelopeBytes)
        received.withLock { $0 = ($0.submissions + 1, $0.bytes + submission.envelope.count) }
        return submission.receipt(storedAtUnixSeconds: Int64(time(nil)))
    }

    func watchRound(
        request: Feddistill_V1_WatchRoundRequest, response: RPCWriter<Feddistill_V1_RoundEvent>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "the throughput sink serves only Join, Submit and Status")
    }

    func status(
        request: Feddistill_V1_StatusRequest, context: ServerContext
    ) async throws -> Feddistill_V1_StatusResponse {
        var response = Feddistill_V1_StatusResponse()
        let counts = received.withLock { $0 }
        response.rounds = 1
        response.submissions = UInt64(counts.submissions)
        return response
    }

    func decline(request: Feddistill_V1_DeclineRequest, context: ServerContext) async throws -> Feddistill_V1_DeclineResponse {
        throw RPCError(code: .unimplemented, message: "the throughput sink serves only Join, Submit and Status")
    }

    func startRound(request: Feddistill_V1_StartRoundRequest, context: ServerContext) async throws -> Feddistill_V1_StartRoundResponse {
        throw RPCError(code: .unimplemented, message: "the throughput sink serves only Join, Submit and Status")
    }

    func globalSet(request: Feddistill_V1_GlobalSetRequest, response: RPCWriter<Feddistill_V1_GlobalSetChunk>,
                   context: ServerContext) async throws {
        throw RPCError(code: .unimplemented, message: "the throughput sink serves only Join, Submit and Status")
    }
}
