import Distill
import FederationProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging

/// A lightweight protocol client for load and chaos tests of a coordinator: a real node identity (mutual TLS, its
/// signing key), a real sealed envelope holding a valid synthetic set of the round's size, and no distillation. It
/// joins, submits with retries, and watches the round until the final event, as `NodeRunner` does.
public struct LoadClient: Sendable {
    public var nodeID: String
    public var host: String
    public var port: Int
    public var credentialsDirectory: String
    /// The dataset whose shape the set has (the round's).
    public var descriptor: DatasetDescriptor
    public var imagesPerClass: Int
    public var seed: UInt64
    public var retry: RetryPolicy

    public init(nodeID: String, host: String, port: Int, credentialsDirectory: String, descriptor: DatasetDescriptor,
                imagesPerClass: Int, seed: UInt64, retry: RetryPolicy) {
        self.nodeID = nodeID
        self.host = host
        self.port = port
        self.credentialsDirectory = credentialsDirectory
        self.descriptor = descriptor
        self.imagesPerClass = imagesPerClass
        self.seed = seed
        self.retry = retry
    }

    /// What one client saw.
    public struct Outcome: Sendable {
        public var nodeID: String
        /// Seconds from the first join attempt to the answer (retries included).
        public var joinSeconds: Double?
        /// Seconds from the first submit attempt to the receipt (retries included).
        public var submitSeconds: Double?
        /// The receipt's SHA-256 of the envelope, when one arrived.
        public var receiptDigest: [UInt8]?
        /// Bytes of the sealed envelope.
        public var envelopeBytes: Int
        /// Whether the round's final result reached this client.
        public var resultReceived: Bool
        /// Why the client stopped early, if it did.
        public var failure: String?
    }

    /// The synthetic set this client submits: `imagesPerClass` seeded random images per class.
    public func syntheticSet() -> SyntheticSet {
        var rng = RandomSource(seed: seed)
        let labels = (0..<descriptor.classCount).flatMap { [Int](repeating: $0, count: imagesPerClass) }
        let images = Tensor.normal([labels.count] + descriptor.imageShape, using: &rng)
        return SyntheticSet(
            data: LabeledImages(images: images, labels: labels, classCount: descriptor.classCount),
            metadata: .init(dataset: descriptor.name, imageShape: descriptor.imageShape, classCount: descriptor.classCount,
                            normalization: descriptor.normalization, method: "load-test", imagesPerClass: imagesPerClass,
                            iterations: 0, initialization: "noise", seed: seed,
                            sourceClassCounts: [Int](repeating: 10 * imagesPerClass, count: descriptor.classCount)))
    }

    /// Joins, submits and watches; never throws: what went wrong is in the outcome.
    /// - Parameter onReceipt: Called once the receipt arrives (the driver counts receipts to time its chaos).
    public func run(logger: Logger, onReceipt: @escaping @Sendable () -> Void = {}) async -> Outcome {
        var outcome = Outcome(nodeID: nodeID, envelopeBytes: 0, resultReceived: false)
        do {
            let transport = try FederationTransport.client(
                host: host, port: port, credentials: TLSCredentials.inDirectory(credentialsDirectory, name: nodeID))
            let signer = try KeyFiles.readSigningKeys(KeyFiles.paths(in: credentialsDirectory, name: nodeID).signingKey)
            let payload = syntheticSet().encoded()
            try await withGRPCClient(transport: transport) { client in
                let federation = Feddistill_V1_Federation.Client(wrapping: client)
                var request = Feddistill_V1_JoinRequest()
                request.nodeID = nodeID
                request.protocolVersion = ProtocolVersion.current
                // It submits a ready-made set labelled dm; the coordinator admits only nodes that announce the round's method.
                request.capabilities = ["load-test", "dm"]
                var start = ContinuousClock.now
                let joined = try await retry.run("join", logger: logger) { try await federation.join(request) }
                outcome.joinSeconds = (ContinuousClock.now - start).inSeconds
                let round = joined.round
                let envelope = try SealedEnvelope.seal(
                    payload: payload, recipient: try SealingPublicKey(rawRepresentation: Array(joined.sealingPublicKey)),
                    signer: signer, header: EnvelopeHeader(federationID: round.federationID, roundID: round.roundID, nodeID: nodeID))
                    .serialized()
                outcome.envelopeBytes = envelope.count
                var metadata = SubmitMetadata()
                metadata.roundID = round.roundID
                metadata.nodeID = nodeID
                start = ContinuousClock.now
                let receipt = try await retry.run("submit", logger: logger) { try await federation.submitEnvelope(envelope, metadata: metadata) }
                outcome.submitSeconds = (ContinuousClock.now - start).inSeconds
                outcome.receiptDigest = Array(receipt.envelopeDigest)
                onReceipt()
                var watch = Feddistill_V1_WatchRoundRequest()
                watch.nodeID = nodeID
                watch.roundID = round.roundID
                // A watch that ends without the final event (the coordinator stopped) is retried like a refused call.
                outcome.resultReceived = try await retry.run("watch", logger: logger) {
                    let final = try await federation.watchRound(watch) { response -> Bool in
                        for try await event in response.messages {
                            if case .finalResult? = event.event { return true }
                        }
                        return false
                    }
                    guard final else { throw RPCError(code: .unavailable, message: "the round watch ended before the result") }
                    return true
                }
            }
        } catch {
            outcome.failure = "\(error)"
        }
        return outcome
    }
}

extension Duration {
    /// The duration in seconds.
    public var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
