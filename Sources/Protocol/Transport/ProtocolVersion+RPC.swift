import GRPCCore

extension ProtocolVersion {
    /// Checks the version a peer announced (e.g. `JoinRequest.protocolVersion`).
    /// - Parameter received: The peer's protocol version.
    /// - Throws: `RPCError(.failedPrecondition)` naming both versions if they differ.
    public static func require(_ received: UInt32) throws(RPCError) {
        guard received == current else {
            throw RPCError(code: .failedPrecondition,
                           message: "protocol version \(received) is not supported (this coordinator speaks \(current))")
        }
    }
}
