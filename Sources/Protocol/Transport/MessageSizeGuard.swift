import NIOCore
import NIOHPACK
import NIOHTTP2

/// Refuses a gRPC request message above `limit` bytes with a status and a reason.
///
/// The gRPC transport enforces the same limit by resetting the stream, so the client sees `unavailable` with no
/// reason. This handler sits first in every HTTP/2 stream's pipeline, follows the 5-byte message prefixes
/// (compressed flag, big-endian length) through the DATA frames without buffering, and when a prefix announces too
/// large a message it answers with a trailers-only response, `RESOURCE_EXHAUSTED` and the sizes, then closes the
/// stream; the message's bytes are never passed on.
final class MessageSizeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let limit: Int
    /// The bytes of the current prefix read so far (0–4).
    private var prefix: [UInt8] = []
    /// Bytes of the current message body still to come.
    private var remainingBody = 0
    private var refused = false

    init(limit: Int) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        if case let .data(frame) = unwrapInboundIn(data), case var .byteBuffer(bytes) = frame.data {
            while bytes.readableBytes > 0 {
                if remainingBody > 0 {
                    let skip = min(remainingBody, bytes.readableBytes)
                    bytes.moveReaderIndex(forwardBy: skip)
                    remainingBody -= skip
                    continue
                }
                prefix += bytes.readBytes(length: min(5 - prefix.count, bytes.readableBytes)) ?? []
                guard prefix.count == 5 else { break }
                let length = prefix[1...4].reduce(0) { $0 << 8 | Int($1) }
                prefix.removeAll(keepingCapacity: true)
                guard length <= limit else {
                    refuse(context: context, length: length)
                    return
                }
                remainingBody = length
            }
        }
        context.fireChannelRead(data)
    }

    private func refuse(context: ChannelHandlerContext, length: Int) {
        refused = true
        let headers: HPACKHeaders = [
            ":status": "200", "content-type": "application/grpc", "grpc-status": "8",
            "grpc-message": "message of \(length) bytes is above the limit of \(limit) bytes",
        ]
        let trailers = HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: true))
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(trailers)).whenComplete { _ in channel.close(promise: nil) }
    }
}

extension MessageSizeGuard {
    /// For `ChannelDebuggingCallbacks.onAcceptHTTP2Stream`: puts a guard first in the stream's pipeline.
    static func install(limit: Int) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(MessageSizeGuard(limit: limit), position: .first)
            }
        }
    }
}
