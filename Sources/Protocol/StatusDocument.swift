import SwiftProtobuf

extension SwiftProtobuf.Message {
    /// The message as one JSON document: the protobuf JSON mapping with the .proto's field names (snake_case), enums
    /// by name and 64-bit integers as numbers. The dashboard's `/api/status` and `feddistill status --json` print
    /// exactly this for the status answer, so scripts written against one work against the other.
    public func jsonDocument() throws -> String {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        options.alwaysPrintInt64sAsNumbers = true
        options.useDeterministicOrdering = true
        return try jsonString(options: options)
    }
}
