import Logging
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Connection-level limits the gRPC transport does not have, applied to every accepted TCP connection before it
/// reads a byte:
///
/// - **a cap on open connections**: past `maxConnections`, a new connection is closed at once (before TLS), so the
///   process stays below its file-descriptor limit and `accept` never fails with `EMFILE` (which makes an event loop
///   spin); the client sees the connection closed and retries like any other `unavailable`;
/// - **a TLS handshake deadline**: a connection that has not completed its handshake within `handshakeTimeout` is
///   closed, so half-open handshakes cannot hold descriptors.
public final class ConnectionGuard: Sendable {
    public let maxConnections: Int
    public let handshakeTimeout: TimeAmount
    private let open = Atomic(0)
    private let refused = Atomic(0)
    private let timedOut = Atomic(0)
    private let logger: Logger

    /// - Parameters:
    ///   - maxConnections: Open connections allowed at once; lowered to the descriptor limit minus a reserve when
    ///     that is smaller (see ``effectiveLimit(requested:descriptorLimit:reserve:)``).
    ///   - handshakeTimeout: Longest a TLS handshake may take.
    public init(maxConnections: Int, handshakeTimeout: Duration, logger: Logger) {
        self.maxConnections = Self.effectiveLimit(requested: maxConnections, descriptorLimit: Self.descriptorLimit())
        let (seconds, attoseconds) = handshakeTimeout.components
        self.handshakeTimeout = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        self.logger = logger
    }

    /// Connections open now, refused at the cap so far, and closed for a late handshake so far.
    public var counts: (open: Int, refused: Int, handshakeTimeouts: Int) {
        (open.load(ordering: .relaxed), refused.load(ordering: .relaxed), timedOut.load(ordering: .relaxed))
    }

    /// The cap actually used: `requested`, but never within `reserve` descriptors of the process's limit.
    public static func effectiveLimit(requested: Int, descriptorLimit: Int?, reserve: Int = 64) -> Int {
        guard let descriptorLimit else { return requested }
        return max(1, min(requested, descriptorLimit - reserve))
    }

    /// The soft limit on open files (nil when it cannot be read or is unlimited).
    static func descriptorLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        return Int(clamping: limit.rlim_cur)
    }

    /// For `ChannelDebuggingCallbacks.onAcceptTCPConnection`: counts the connection, refuses it over the cap, and
    /// otherwise arms the handshake deadline right after the TLS handler.
    @Sendable public func accept(_ channel: any Channel) -> EventLoopFuture<Void> {
        let now = open.wrappingAdd(1, ordering: .relaxed).newValue
        channel.closeFuture.whenComplete { [self] _ in _ = open.wrappingSubtract(1, ordering: .relaxed) }
        guard now <= maxConnections else {
            let total = refused.wrappingAdd(1, ordering: .relaxed).newValue
            // One line per 100 refusals: a flood must not become a flood of log lines.
            if total % 100 == 1 {
                logger.warning("connection refused at the cap", metadata: ["connections.max": "\(maxConnections)",
                                                                         "connections.refused": "\(total)"])
            }
            channel.close(promise: nil)
            return channel.eventLoop.makeSucceededVoidFuture()
        }
        let deadline = HandshakeDeadline(timeout: handshakeTimeout, onTimeout: { [self] in
            _ = timedOut.wrappingAdd(1, ordering: .relaxed)
        })
        return channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            // A plaintext transport has no TLS handler and nothing to time.
            guard let tls = try? pipeline.handler(type: NIOSSLServerHandler.self) else { return }
            try pipeline.addHandler(deadline, position: .after(tls))
        }
    }
}

/// Closes the connection unless the TLS handshake completes in time; removes itself once it has.
final class HandshakeDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let timeout: TimeAmount
    private let onTimeout: @Sendable () -> Void
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount, onTimeout: @escaping @Sendable () -> Void) {
        self.timeout = timeout
        self.onTimeout = onTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let onTimeout = onTimeout
        timer = context.eventLoop.scheduleTask(in: timeout) {
            onTimeout()
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted? = event as? TLSUserEvent {
            timer?.cancel()
            timer = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}
