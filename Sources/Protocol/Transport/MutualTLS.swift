import GRPCCore
import GRPCNIOTransportHTTP2

/// The PEM files one party of the federation presents and trusts over mutual TLS.
public struct TLSCredentials: Sendable, Hashable {
    /// The federation CA certificate: the only trust root (the system store is never consulted).
    public var caCertificatePath: String
    /// This party's certificate, signed by the federation CA.
    public var certificatePath: String
    /// This party's private key (PKCS#8 PEM, mode 0600).
    public var privateKeyPath: String

    /// Creates credentials from file paths.
    /// - Parameters:
    ///   - caCertificatePath: The federation CA certificate.
    ///   - certificatePath: This party's certificate.
    ///   - privateKeyPath: This party's private key.
    public init(caCertificatePath: String, certificatePath: String, privateKeyPath: String) {
        self.caCertificatePath = caCertificatePath
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
    }

    /// The files `CertificateAuthority` writes for `name` in `directory`: `ca.pem`, `NAME.pem`, `NAME.key`.
    /// - Parameters:
    ///   - directory: The certificate directory.
    ///   - name: The coordinator or node name the certificate was issued for.
    /// - Returns: The credentials.
    public static func inDirectory(_ directory: String, name: String) -> TLSCredentials {
        TLSCredentials(
            caCertificatePath: directory + "/" + CertificateAuthority.caCertificateFile,
            certificatePath: directory + "/" + name + ".pem", privateKeyPath: directory + "/" + name + ".key")
    }
}

/// Builds the gRPC transports of the federation: HTTP/2 over mutual TLS, trusting only the federation CA.
public enum FederationTransport {
    /// Largest gRPC message accepted on either side (the gRPC default is 4 MiB).
    public static let defaultMaxMessageBytes = 16 << 20
    /// The server's HTTP/2 flow-control window (the 64 KiB default caps uploads at about 50 MB/s).
    public static let defaultServerWindowBytes = 16 << 20
    /// HTTP/2 frame size the server advertises.
    public static let defaultMaxFrameBytes = 1 << 20

    /// A server transport that requires a client certificate signed by the federation CA.
    ///
    /// Clients with no certificate, or with one from another CA, fail the TLS handshake. Handlers learn the
    /// client's node id with `PeerIdentity.nodeID(of:)`.
    /// - Parameters:
    ///   - host: Address to bind, e.g. `"127.0.0.1"` or `"0.0.0.0"`.
    ///   - port: Port to bind; 0 picks a free one (read it from `GRPCServer.listeningAddress`).
    ///   - credentials: Coordinator certificate, key and the federation CA.
    ///   - maxMessageBytes: Largest request message accepted.
    ///   - windowBytes: HTTP/2 target window.
    /// - Returns: The transport, to pass to `GRPCServer`.
    public static func server(
        host: String, port: Int, credentials: TLSCredentials, maxMessageBytes: Int = defaultMaxMessageBytes,
        windowBytes: Int = defaultServerWindowBytes, connectionLimits: ConnectionLimits = .default
    ) -> HTTP2ServerTransport.Posix {
        let security = HTTP2ServerTransport.Posix.TransportSecurity.mTLS(
            certificateChain: [.file(path: credentials.certificatePath, format: .pem)],
            privateKey: .file(path: credentials.privateKeyPath, format: .pem)
        ) { tls in
            tls.trustRoots = .certificates([.file(path: credentials.caCertificatePath, format: .pem)])
            // Chain verification against the CA; the node id check happens per call (PeerIdentity).
            tls.clientCertificateVerification = .noHostnameVerification
            tls.requireALPN = false
        }
        let config = HTTP2ServerTransport.Posix.Config.defaults { config in
            config.rpc.maxRequestPayloadSize = maxMessageBytes
            config.http2.targetWindowSize = windowBytes
            config.http2.maxFrameSize = defaultMaxFrameBytes
            config.http2.maxConcurrentStreams = connectionLimits.maxConcurrentStreams
            config.connection.maxIdleTime = connectionLimits.idleTimeout
            // A message above the limit gets RESOURCE_EXHAUSTED with the sizes instead of the transport's bare reset.
            config.channelDebuggingCallbacks.onAcceptHTTP2Stream = MessageSizeGuard.install(limit: maxMessageBytes)
            if let guardian = connectionLimits.connectionGuard {
                config.channelDebuggingCallbacks.onAcceptTCPConnection = guardian.accept
            }
        }
        return HTTP2ServerTransport.Posix(
            address: .ipv4(host: host, port: port), transportSecurity: security, config: config)
    }

    /// A client transport that presents the node's certificate and verifies the coordinator's chain and name.
    ///
    /// The coordinator certificate must chain to the federation CA and carry `serverName` (or, when `serverName`
    /// is `nil` and `host` is an IP literal, that IP address) in its subject alternative names.
    /// - Parameters:
    ///   - host: The coordinator's address: an IPv4 literal or a DNS name.
    ///   - port: The coordinator's port.
    ///   - serverName: The name to verify (and send as SNI); defaults to `host` when it is a DNS name.
    ///   - credentials: Node certificate, key and the federation CA. `nil` presents no certificate (the
    ///     coordinator will refuse; useful only in tests).
    ///   - caCertificatePath: Trust root when `credentials` is `nil`.
    ///   - maxMessageBytes: Largest message sent or received (in this gRPC version the client's request limit
    ///     also bounds received messages).
    /// - Returns: The transport, to pass to `GRPCClient`.
    /// - Throws: `RPCError(.invalidArgument)` without any CA path; a transport error if the target cannot be
    ///   resolved or the TLS context cannot be built (unreadable files).
    public static func client(
        host: String, port: Int, serverName: String? = nil, credentials: TLSCredentials?,
        caCertificatePath: String? = nil, maxMessageBytes: Int = defaultMaxMessageBytes
    ) throws -> HTTP2ClientTransport.Posix {
        guard let caPath = credentials?.caCertificatePath ?? caCertificatePath else {
            throw RPCError(code: .invalidArgument, message: "a client needs the federation CA certificate to trust")
        }
        var tls = HTTP2ClientTransport.Posix.TransportSecurity.TLS(
            certificateChain: [], privateKey: nil, serverCertificateVerification: .fullVerification,
            trustRoots: .certificates([.file(path: caPath, format: .pem)]))
        if let credentials {
            tls.certificateChain = [.file(path: credentials.certificatePath, format: .pem)]
            tls.privateKey = .file(path: credentials.privateKeyPath, format: .pem)
        }
        let isIPv4 = isIPv4Literal(host)
        let authority = serverName ?? (isIPv4 ? nil : host)
        let config = HTTP2ClientTransport.Posix.Config.defaults { config in
            config.http2.authority = authority
            config.http2.maxFrameSize = defaultMaxFrameBytes
        }
        let target: any ResolvableTarget = isIPv4 ? .ipv4(address: host, port: port) : .dns(host: host, port: port)
        return try HTTP2ClientTransport.Posix(
            target: target, transportSecurity: .tls(tls), config: config,
            serviceConfig: serviceConfig(maxMessageBytes: maxMessageBytes))
    }

    /// Service config raising the message limits of every `feddistill.v1.Federation` method.
    /// - Parameter maxMessageBytes: Largest message sent or received.
    /// - Returns: The service config.
    public static func serviceConfig(maxMessageBytes: Int = defaultMaxMessageBytes) -> ServiceConfig {
        ServiceConfig(methodConfig: [
            MethodConfig(
                names: [MethodConfig.Name(service: Feddistill_V1_Federation.descriptor.fullyQualifiedService)],
                maxRequestMessageBytes: maxMessageBytes, maxResponseMessageBytes: maxMessageBytes)
        ])
    }

    static func isIPv4Literal(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
    }
}

/// Connection limits of the server transport: a connection with no open call is closed after `idleTimeout`; one
/// connection may carry at most `maxConcurrentStreams` calls at once (a peer cannot open thousands of streams on one
/// socket); and, with a ``ConnectionGuard``, a cap on open connections and a TLS handshake deadline.
public struct ConnectionLimits: Sendable {
    public var idleTimeout: Duration?
    public var maxConcurrentStreams: Int?
    /// The connection cap and TLS handshake deadline (nil: neither).
    public var connectionGuard: ConnectionGuard?

    public init(idleTimeout: Duration?, maxConcurrentStreams: Int?, connectionGuard: ConnectionGuard? = nil) {
        self.idleTimeout = idleTimeout
        self.maxConcurrentStreams = maxConcurrentStreams
        self.connectionGuard = connectionGuard
    }

    /// Idle connections closed after 5 minutes; 16 concurrent calls per connection; no guard.
    public static let `default` = ConnectionLimits(idleTimeout: .seconds(300), maxConcurrentStreams: 16)
}
