/// The version of the federation wire protocol spoken by this build.
public enum ProtocolVersion {
    /// Current protocol version; peers with another major version are refused.
    public static let current: UInt32 = 1
}
