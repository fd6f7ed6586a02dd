import Crypto
import FederationProtocol
import Foundation
import Logging
import GRPCCore
import GRPCNIOTransportHTTP2
import Testing

/// Real gRPC over real mutual TLS on 127.0.0.1, port 0, with certificates made in a temporary directory.
@Suite(.timeLimit(.minutes(1)))
struct ServiceTests {
    /// A federation CA with a coordinator and two nodes, plus a foreign CA with its own "node-a".
    struct PKI {
        let directory: TemporaryDirectory
        let foreignDirectory: TemporaryDirectory
        let coordinator: TLSCredentials
        /// A coordinator certificate whose only SAN is the DNS name `coordinator.example`.
        let namedCoordinator: TLSCredentials
        let nodeA: TLSCredentials
        let nodeB: TLSCredentials
        let foreignNodeA: TLSCredentials

        init() throws {
            directory = try TemporaryDirectory()
            foreignDirectory = try TemporaryDirectory()
            let ca = try CertificateAuthority.create(in: directory.path)
            coordinator = try ca.issue(name: "coordinator", role: .coordinator(subjectAlternativeNames: [])).credentials
            namedCoordinator = try ca.issue(
                name: "named-coordinator", role: .coordinator(subjectAlternativeNames: ["coordinator.example"])
            ).credentials
            nodeA = try ca.issue(name: "node-a", role: .node).credentials
            nodeB = try ca.issue(name: "node-b", role: .node).credentials
            let foreign = try CertificateAuthority.create(in: foreignDirectory.path)
            foreignNodeA = try foreign.issue(name: "node-a", role: .node).credentials
        }

        func remove() {
            directory.remove()
            foreignDirectory.remove()
        }
    }

    let pki: PKI
    let service: TestFederationService

    init() throws {
        pki = try PKI()
        service = TestFederationService(sealingKeys: try SealingKeys.generate())
    }

    /// Runs `body` with the port of a live server; shuts the server down afterwards.
    func withServer<T: Sendable>(
        credentials: TLSCredentials? = nil, _ body: (Int) async throws -> T
    ) async throws -> T {
        defer { pki.remove() }
        let server = GRPCServer(
            transport: FederationTransport.server(
                host: "127.0.0.1", port: 0, credentials: credentials ?? pki.coordinator),
            services: [service])
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            let port = try #require(try await server.listeningAddress?.ipv4?.port)
            let result = try await body(port)
            server.beginGracefulShutdown()
            group.cancelAll()
            return result
        }
    }

    func withClient<T: Sendable>(
        port: Int, credentials: TLSCredentials?, serverName: String? = nil,
        _ body: (Feddistill_V1_Federation.Client<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        let transport = try FederationTransport.client(
            host: "127.0.0.1", port: port, serverName: serverName, credentials: credentials,
            caCertificatePath: pki.coordinator.caCertificatePath)
        return try await withGRPCClient(transport: transport) { client in
            try await body(Feddistill_V1_Federation.Client(wrapping: client))
        }
    }

    func joinRequest(_ node: String) -> Feddistill_V1_JoinRequest {
        var request = Feddistill_V1_JoinRequest()
        request.nodeID = node
        request.protocolVersion = ProtocolVersion.current
        request.capabilities = ["dm"]
        return request
    }

    @Test func joinThenSubmitALargeEnvelopeInChunksGetsAReceipt() async throws {
        let signing = try SigningKeys.generate()
        var rng = SplitMix64(seed: 5)
        let payload = randomBytes(5 << 20, using: &rng)  // above gRPC's 4 MiB default message limit
        try await withServer { port in
            try await withClient(port: port, credentials: pki.nodeA) { federation in
                let joined = try await federation.join(joinRequest("node-a"))
                #expect(joined.round.roundID == 3 && joined.round.imageShape == [1, 8, 8])
                let recipient = try SealingPublicKey(rawRepresentation: Array(joined.sealingPublicKey))
                let header = EnvelopeHeader(federationID: joined.round.federationID, roundID: joined.round.roundID,
                                            nodeID: "node-a")
                let envelope = try SealedEnvelope.seal(payload: payload, recipient: recipient, signer: signing,
                                                       header: header).serialized()
                var metadata = SubmitMetadata()
                metadata.roundID = joined.round.roundID
                metadata.nodeID = "node-a"
                metadata.privacyAuditJson = #"{"lossThresholdAUC":0.51}"#
                let receipt = try await federation.submitEnvelope(envelope, metadata: metadata, chunkBytes: 256 << 10)
                #expect(Array(receipt.envelopeDigest) == Array(SHA256.hash(data: envelope)))
                #expect(receipt.storedAtUnixSeconds == 1_800_000_000)

                let stored = try #require(service.stored["node-a"])
                #expect(stored == envelope)
                let verifier = EnvelopeVerifier(
                    federationID: "fed-test", recipientKeys: service.sealingKeys,
                    nodeSigningKeys: ["node-a": signing.publicKey], replayStore: InMemoryReplayStore())
                let verified = try await verifier.verify(stored, currentRound: 3, sender: "node-a")
                #expect(verified.payload == payload)

                let status = try await federation.status(Feddistill_V1_StatusRequest())
                #expect(status.nodes == 1 && status.submissions == 1)
                let events = try await federation.watchRound(
                    { var r = Feddistill_V1_WatchRoundRequest(); r.nodeID = "node-a"; r.roundID = 3; return r }()
                ) { response in
                    var collected: [Feddistill_V1_RoundEvent] = []
                    for try await event in response.messages { collected.append(event) }
                    return collected
                }
                #expect(events.count == 2)
                #expect(events.first?.nodeJoined.nodeID == "node-a")
                #expect(events.last?.roundClosed.submissionCount == 1)
            }
        }
    }

    @Test func clientWithoutCertificateIsRefused() async throws {
        try await withServer { port in
            await #expect(throws: RPCError.self) {
                try await withClient(port: port, credentials: nil) { try await $0.join(joinRequest("node-a")) }
            }
            #expect(service.joined.isEmpty)
            // The server still serves members.
            let joined = try await withClient(port: port, credentials: pki.nodeA) {
                try await $0.join(joinRequest("node-a"))
            }
            #expect(joined.round.roundID == 3)
        }
    }

    @Test func clientWithCertificateFromAnotherCAIsRefused() async throws {
        try await withServer { port in
            await #expect(throws: RPCError.self) {
                try await withClient(port: port, credentials: TLSCredentials(
                    caCertificatePath: pki.coordinator.caCertificatePath,
                    certificatePath: pki.foreignNodeA.certificatePath,
                    privateKeyPath: pki.foreignNodeA.privateKeyPath)) { try await $0.join(joinRequest("node-a")) }
            }
            #expect(service.joined.isEmpty)
        }
    }

    @Test func clientVerifiesTheCoordinatorName() async throws {
        // NIOSSL accepts the coordinator if a SAN matches the expected DNS name or the connected IP address.
        try await withServer(credentials: pki.namedCoordinator) { port in
            await #expect(throws: RPCError.self) {  // connected to 127.0.0.1, which the certificate does not name
                try await withClient(port: port, credentials: pki.nodeA) { try await $0.join(joinRequest("node-a")) }
            }
            await #expect(throws: RPCError.self) {
                try await withClient(port: port, credentials: pki.nodeA, serverName: "impostor.example") {
                    try await $0.join(joinRequest("node-a"))
                }
            }
            #expect(service.joined.isEmpty)
            let joined = try await withClient(port: port, credentials: pki.nodeA, serverName: "coordinator.example") {
                try await $0.join(joinRequest("node-a"))
            }
            #expect(joined.round.roundID == 3 && service.joined == ["node-a"])
        }
    }

    @Test func messagesNamingAnotherNodeArePermissionDenied() async throws {
        try await withServer { port in
            try await withClient(port: port, credentials: pki.nodeA) { federation in
                let error = await #expect(throws: RPCError.self) { try await federation.join(joinRequest("node-b")) }
                #expect(error?.code == .permissionDenied)
                var oldVersion = joinRequest("node-a")
                oldVersion.protocolVersion = ProtocolVersion.current + 1
                let versionError = await #expect(throws: RPCError.self) { try await federation.join(oldVersion) }
                #expect(versionError?.code == .failedPrecondition)
                var metadata = SubmitMetadata()
                metadata.roundID = 3
                metadata.nodeID = "node-b"
                let submitError = await #expect(throws: RPCError.self) {
                    try await federation.submitEnvelope([1, 2, 3], metadata: metadata)
                }
                #expect(submitError?.code == .permissionDenied)
                #expect(service.joined.isEmpty && service.stored.isEmpty)
            }
        }
    }

    @Test func truncatedSubmitStreamFailsAndTheServerKeepsServing() async throws {
        try await withServer { port in
            try await withClient(port: port, credentials: pki.nodeA) { federation in
                let error = await #expect(throws: RPCError.self) {
                    try await federation.submit(requestProducer: { writer in
                        var first = SubmitChunk()
                        first.metadata.roundID = 3
                        first.metadata.nodeID = "node-a"
                        first.metadata.totalSize = 1000
                        try await writer.write(first)
                        var data = SubmitChunk()
                        data.data = Data(repeating: 7, count: 500)
                        try await writer.write(data)  // then the stream ends: 500 of 1000 bytes
                    })
                }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message.contains("truncated") == true)
                #expect(service.stored.isEmpty)
            }
            // Another connection is served normally.
            try await withClient(port: port, credentials: pki.nodeB) { federation in
                var metadata = SubmitMetadata()
                metadata.roundID = 3
                metadata.nodeID = "node-b"
                let receipt = try await federation.submitEnvelope(Array(repeating: 1, count: 100_000),
                                                                  metadata: metadata)
                #expect(receipt.envelopeDigest.count == 32)
                #expect(service.stored["node-b"]?.count == 100_000)
            }
        }
    }

    /// Oversized input gets a status with a reason, like every other refusal, and the server keeps serving: a chunk
    /// above the 1 MiB chunk limit (in a message below the 16 MiB message limit) gets `invalidArgument` from the
    /// receiver; a single message above 16 MiB gets `resourceExhausted` from the message-size guard (the gRPC
    /// transport alone would reset the stream without a reason).
    @Test(arguments: [(3 << 20, RPCError.Code.invalidArgument, "above the limit of 1048576"),
                      (17 << 20, RPCError.Code.resourceExhausted, "above the limit of 16777216 bytes")])
    func oversizedInputGetsAStatusWithAReason(bytes: Int, code: RPCError.Code, reason: String) async throws {
        try await withServer { port in
            let transport = try FederationTransport.client(
                host: "127.0.0.1", port: port, credentials: pki.nodeA, caCertificatePath: pki.coordinator.caCertificatePath,
                maxMessageBytes: 64 << 20)
            try await withGRPCClient(transport: transport) { client in
                let federation = Feddistill_V1_Federation.Client(wrapping: client)
                let error = await #expect(throws: RPCError.self) {
                    try await federation.submit(requestProducer: { writer in
                        var first = SubmitChunk()
                        first.metadata.roundID = 3
                        first.metadata.nodeID = "node-a"
                        first.metadata.totalSize = UInt64(bytes)
                        try await writer.write(first)
                        var data = SubmitChunk()
                        data.data = Data(repeating: 7, count: bytes)
                        try await writer.write(data)
                    })
                }
                #expect(error?.code == code, "\(String(describing: error))")
                #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
            }
            try await withClient(port: port, credentials: pki.nodeB) { federation in
                var metadata = SubmitMetadata()
                metadata.roundID = 3
                metadata.nodeID = "node-b"
                _ = try await federation.submitEnvelope(Array(repeating: 1, count: 1000), metadata: metadata)
            }
        }
    }

    /// The connection guard: past the cap a connection is closed at accept, a connection that never completes its
    /// TLS handshake is closed at the deadline, and a real client is served once there is room.
    @Test func theConnectionGuardCapsConnectionsAndTimesOutHandshakes() async throws {
        defer { pki.remove() }
        let guardian = ConnectionGuard(maxConnections: 2, handshakeTimeout: .milliseconds(300), logger: Logger(label: "test"))
        let server = GRPCServer(
            transport: FederationTransport.server(
                host: "127.0.0.1", port: 0, credentials: pki.coordinator,
                connectionLimits: ConnectionLimits(idleTimeout: nil, maxConcurrentStreams: 16, connectionGuard: guardian)),
            services: [service])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            let port = try #require(try await server.listeningAddress?.ipv4?.port)
            // Two silent TCP connections fill the cap; the third is closed at once.
            let silent = [try RawConnection(port: port), try RawConnection(port: port)]
            let refused = try RawConnection(port: port)
            #expect(refused.waitUntilClosed(), "the connection over the cap is closed")
            // The silent ones never send a ClientHello: closed at the handshake deadline.
            for connection in silent { #expect(connection.waitUntilClosed(), "a silent connection is closed at the deadline") }
            let counts = guardian.counts
            #expect(counts.refused >= 1 && counts.handshakeTimeouts >= 2, "\(counts)")
            try await withClient(port: port, credentials: pki.nodeA) { federation in
                var metadata = SubmitMetadata()
                metadata.roundID = 3
                metadata.nodeID = "node-a"
                _ = try await federation.submitEnvelope(Array(repeating: 1, count: 1000), metadata: metadata)
            }
            server.beginGracefulShutdown()
            group.cancelAll()
        }
    }
}

/// A plain TCP connection that sends nothing (a client stuck before its TLS handshake).
final class RawConnection {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        // A bound on the wait below, so a broken guard fails the test instead of hanging it.
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    /// Blocks until the server closes the connection (true) or 10 s pass (false).
    func waitUntilClosed() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 { return true }
            if count < 0 { return errno == ECONNRESET }
        }
    }
}

