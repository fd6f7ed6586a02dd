import GRPCCore

extension EnvelopeError {
    /// The gRPC status this error is reported to the peer with; the message is `description`.
    public var rpcCode: RPCError.Code {
        switch self {
        case .truncated, .badMagic, .unsupportedFormatVersion, .invalidField, .trailingBytes:
            return .invalidArgument
        case .tooLarge:
            return .resourceExhausted
        case .badSignature, .unknownNode:
            return .unauthenticated
        case .wrongRecipient, .decryptionFailed:
            return .invalidArgument
        case .senderMismatch:
            return .permissionDenied
        case .protocolVersionMismatch, .federationMismatch, .staleRound, .futureRound:
            return .failedPrecondition
        case .replay:
            return .alreadyExists
        case .cryptoFailure, .replayStoreFailed:
            return .internalError
        }
    }

    /// This error as an `RPCError` with a reason, for a handler to throw.
    public var rpcError: RPCError { RPCError(code: rpcCode, message: description) }
}
