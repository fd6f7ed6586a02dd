import Logging

/// An envelope that passed every coordinator-side check, with its decrypted payload.
public struct VerifiedEnvelope: Sendable {
    /// The authenticated header.
    public let header: EnvelopeHeader
    /// The envelope nonce (recorded in the replay store).
    public let nonce: [UInt8]
    /// The decrypted payload (opaque bytes).
    public let payload: [UInt8]
}

/// The coordinator's checks on a received envelope, in order: structure and limits, protocol version,
/// federation, sender (the node id from the peer certificate), round (neither stale nor future), registered
/// node, Ed25519 signature, recipient and body authentication, and finally the replay store.
///
/// The replay store is written only after the envelope is authenticated, so forged envelopes cannot fill it.
public struct EnvelopeVerifier: Sendable {
    /// The federation every envelope must name.
    public var federationID: String
    /// The coordinator's X25519 key pair.
    public var recipientKeys: SealingKeys
    /// Each member node's registered Ed25519 public key, by node id.
    public var nodeSigningKeys: [String: SigningPublicKey]
    /// Where accepted (round, node, nonce) triples are remembered.
    public var replayStore: any ReplayStore
    /// Parser limits.
    public var limits: EnvelopeLimits

    /// Creates a verifier.
    /// - Parameters:
    ///   - federationID: The federation every envelope must name.
    ///   - recipientKeys: The coordinator's sealing key pair.
    ///   - nodeSigningKeys: Registered node signing keys by node id.
    ///   - replayStore: The replay store.
    ///   - limits: Parser limits.
    public init(
        federationID: String, recipientKeys: SealingKeys, nodeSigningKeys: [String: SigningPublicKey],
        replayStore: any ReplayStore, limits: EnvelopeLimits = .default
    ) {
        self.federationID = federationID
        self.recipientKeys = recipientKeys
        self.nodeSigningKeys = nodeSigningKeys
        self.replayStore = replayStore
        self.limits = limits
    }

    /// Runs every check on received bytes and returns the payload.
    /// - Parameters:
    ///   - bytes: The envelope as received.
    ///   - currentRound: The round now open; other rounds are stale or future.
    ///   - sender: The node id proven by the peer certificate; `nil` skips the check (offline verification).
    ///   - logger: Receives one line per envelope: accepted (node, round, size) or rejected (reason).
    /// - Returns: The verified header and decrypted payload.
    /// - Throws: The first `EnvelopeError` found; map it with `rpcError` to answer the peer.
    public func verify(
        _ bytes: [UInt8], currentRound: UInt64, sender: String?, logger: Logger = .current
    ) async throws(EnvelopeError) -> VerifiedEnvelope {
        do {
            let verified = try authenticate(bytes, currentRound: currentRound, sender: sender)
            try await recordNonce(of: verified)
            logger.info("envelope accepted", metadata: [
                "node.id": "\(verified.header.nodeID)", "round.id": "\(verified.header.roundID)",
                "payload.bytes": "\(verified.payload.count)",
            ])
            return verified
        } catch {
            logger.info("envelope rejected", metadata: [
                "sender": "\(sender ?? "-")", "round.current": "\(currentRound)", "reason": "\(error.description)",
            ])
            throw error
        }
    }

    /// Every check but the replay store, in the same order as ``verify(_:currentRound:sender:logger:)``: for an
    /// envelope that was verified once and stored (a coordinator opening its stored submissions again), and for the
    /// submit path, which records the nonce itself once the payload is valid too.
    /// - Parameters:
    ///   - bytes: The envelope.
    ///   - currentRound: The round it must belong to.
    ///   - sender: The node it must come from; `nil` skips the check.
    /// - Returns: The authenticated header, nonce and decrypted payload.
    /// - Throws: The first `EnvelopeError` found.
    public func authenticate(_ bytes: [UInt8], currentRound: UInt64, sender: String?) throws(EnvelopeError) -> VerifiedEnvelope {
        let envelope = try SealedEnvelope.parse(bytes, limits: limits)
        let header = envelope.header
        guard header.protocolVersion == ProtocolVersion.current else {
            throw .protocolVersionMismatch(received: header.protocolVersion, supported: ProtocolVersion.current)
        }
        guard header.federationID == federationID else {
            throw .federationMismatch(received: header.federationID, expected: federationID)
        }
        if let sender, sender != header.nodeID { throw .senderMismatch(envelopeNode: header.nodeID, sender: sender) }
        if header.roundID < currentRound { throw .staleRound(received: header.roundID, current: currentRound) }
        if header.roundID > currentRound { throw .futureRound(received: header.roundID, current: currentRound) }
        guard let signer = nodeSigningKeys[header.nodeID] else { throw .unknownNode(header.nodeID) }
        let payload = try envelope.open(recipientKeys: recipientKeys, expectedSigner: signer)
        return VerifiedEnvelope(header: header, nonce: envelope.nonce, payload: payload)
    }

    /// Records an authenticated envelope's nonce; throws `.replay` if it was seen before.
    public func recordNonce(of verified: VerifiedEnvelope) async throws(EnvelopeError) {
        let key = ReplayKey(roundID: verified.header.roundID, nodeID: verified.header.nodeID, nonce: verified.nonce)
        let isNew: Bool
        do { isNew = try await replayStore.recordIfAbsent(key) } catch {
            throw .replayStoreFailed(reason: String(describing: error))
        }
        guard isNew else { throw .replay(roundID: verified.header.roundID, nodeID: verified.header.nodeID) }
    }
}
