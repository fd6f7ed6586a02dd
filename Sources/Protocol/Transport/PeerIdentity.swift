import GRPCCore
import GRPCNIOTransportHTTP2
import X509

/// Which node a server handler is talking to, read from the client certificate the TLS handshake verified.
///
/// `HTTP2ServerTransport.Posix` records the verified peer certificate in
/// `ServerContext.transportSpecific` (`HTTP2ServerTransport.Posix.Context.peerCertificate`, filled from BoringSSL
/// after the handshake). A node certificate names the node twice, as subject CN and as the only SAN DNS name;
/// both must agree, and its extended key usage must include clientAuth.
public enum PeerIdentity {
    /// The node id proven by the peer certificate.
    /// - Parameter context: The handler's server context.
    /// - Returns: The node id.
    /// - Throws: `RPCError(.unauthenticated)` if there is no peer certificate (e.g. a plaintext transport),
    ///   `RPCError(.permissionDenied)` if the certificate does not name exactly one node.
    public static func nodeID(of context: ServerContext) throws(RPCError) -> String {
        guard let certificate = certificate(of: context) else {
            throw RPCError(code: .unauthenticated, message: "no verified client certificate on this connection")
        }
        return try nodeID(of: certificate)
    }

    /// The client certificate the TLS handshake verified, if the connection has one.
    public static func certificate(of context: ServerContext) -> Certificate? {
        (context.transportSpecific as? HTTP2ServerTransport.Posix.Context)?.peerCertificate
    }

    /// The node id a node certificate names (subject CN, equal to its single SAN DNS name).
    /// - Parameter certificate: A node certificate.
    /// - Returns: The node id.
    /// - Throws: `RPCError(.permissionDenied)` if CN and SAN are missing or disagree, or the certificate lacks the
    ///   clientAuth extended key usage.
    public static func nodeID(of certificate: Certificate) throws(RPCError) -> String {
        var commonNames: [String] = []
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                if let name = String(attribute.value) { commonNames.append(name) }
            }
        }
        var dnsNames: [String] = []
        if let sans = try? certificate.extensions.subjectAlternativeNames {
            for name in sans { if case .dnsName(let dns) = name { dnsNames.append(dns) } }
        }
        guard !isOperator(certificate) else {
            throw RPCError(code: .permissionDenied, message: "an operator certificate cannot act as a node")
        }
        guard commonNames.count == 1, let commonName = commonNames.first, dnsNames == [commonName] else {
            throw RPCError(code: .permissionDenied,
                           message: "client certificate does not name exactly one node (CN and SAN DNS must agree)")
        }
        // A coordinator (serverAuth) certificate must not pass as a node, even if its names would.
        let usage: ExtendedKeyUsage?
        do { usage = try certificate.extensions.extendedKeyUsage } catch { usage = nil }
        guard let usage, usage.contains(.clientAuth) else {
            throw RPCError(code: .permissionDenied, message: "client certificate is not a node (clientAuth) certificate")
        }
        return commonName
    }

    /// Whether the certificate carries the operator role (SAN URI ``CertificateAuthority/operatorRoleURI``).
    public static func isOperator(_ certificate: Certificate) -> Bool {
        guard let sans = try? certificate.extensions.subjectAlternativeNames else { return false }
        return sans.contains { if case .uniformResourceIdentifier(let uri) = $0 { uri == CertificateAuthority.operatorRoleURI } else { false } }
    }

    /// The operator's name (subject CN) when the verified client certificate is an operator's clientAuth certificate.
    public static func operatorName(_ context: ServerContext) -> String? {
        guard let certificate = certificate(of: context), isOperator(certificate) else { return nil }
        let usage = try? certificate.extensions.extendedKeyUsage
        guard usage?.contains(.clientAuth) == true else { return nil }
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                if let name = String(attribute.value) { return name }
            }
        }
        return nil
    }

    /// Checks that the node id a message claims is the node the certificate proves.
    /// - Parameters:
    ///   - claimedNodeID: The node id in the request message.
    ///   - context: The handler's server context.
    /// - Returns: The verified node id.
    /// - Throws: `RPCError(.permissionDenied)` if they differ; see `nodeID(of:)` for the other errors.
    @discardableResult
    public static func requireNode(_ claimedNodeID: String, context: ServerContext) throws(RPCError) -> String {
        let proven = try nodeID(of: context)
        guard proven == claimedNodeID else {
            throw RPCError(
                code: .permissionDenied,
                message: "message names node \(PeerString.quoted(claimedNodeID)) but the client certificate is for \(PeerString.quoted(proven))")
        }
        return proven
    }
}
