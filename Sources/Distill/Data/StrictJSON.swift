/// A strict, bounded JSON reader for bytes that come from outside (safetensors headers, set metadata, a peer's
/// audit summary).
///
/// Unlike `JSONSerialization` it keeps integers and fractions apart (a `1.0` or `true` is never read as an integer),
/// refuses duplicate object keys, invalid UTF-8, control characters in strings, nesting deeper than
/// ``Limits/maxDepth`` and documents with more than ``Limits/maxValues`` values, and it never traps: every length
/// and every number is checked before use. It allocates at most a small multiple of its input.
public enum StrictJSON {
    /// One JSON value. Objects keep their keys in document order.
    public indirect enum Value: Sendable, Equatable {
        case object([(key: String, value: Value)])
        case array([Value])
        case string(String)
        /// A number written without fraction or exponent that fits `Int64`.
        case integer(Int64)
        /// Any other number (finite).
        case number(Double)
        case bool(Bool)
        case null

        public static func == (lhs: Value, rhs: Value) -> Bool {
            switch (lhs, rhs) {
            case let (.object(a), .object(b)):
                a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
            case let (.array(a), .array(b)): a == b
            case let (.string(a), .string(b)): a == b
            case let (.integer(a), .integer(b)): a == b
            case let (.number(a), .number(b)): a == b
            case let (.bool(a), .bool(b)): a == b
            case (.null, .null): true
            default: false
            }
        }

        /// The members of an object, or nil.
        public var objectMembers: [(key: String, value: Value)]? {
            if case let .object(members) = self { return members }
            return nil
        }

        /// The value of `key` in an object, or nil.
        public subscript(key: String) -> Value? {
            objectMembers?.first { $0.key == key }?.value
        }

        /// The string, or nil.
        public var stringValue: String? {
            if case let .string(text) = self { return text }
            return nil
        }

        /// The integer, or nil (fractions, booleans and strings are not integers).
        public var integerValue: Int64? {
            if case let .integer(value) = self { return value }
            return nil
        }

        /// An array whose elements are all integers, or nil.
        public var integerArray: [Int64]? {
            guard case let .array(items) = self else { return nil }
            var values: [Int64] = []
            values.reserveCapacity(items.count)
            for item in items {
                guard let value = item.integerValue else { return nil }
                values.append(value)
            }
            return values
        }
    }

    /// What the reader accepts.
    public struct Limits: Sendable, Equatable {
        /// Largest input, in bytes.
        public var maxBytes: Int
        /// Deepest nesting of arrays and objects.
        public var maxDepth: Int
        /// Most values (of any kind) in one document.
        public var maxValues: Int

        public init(maxBytes: Int, maxDepth: Int, maxValues: Int) {
            self.maxBytes = maxBytes
            self.maxDepth = maxDepth
            self.maxValues = maxValues
        }

        /// 1 MiB, depth 16, 100,000 values.
        public static let `default` = Limits(maxBytes: 1 << 20, maxDepth: 16, maxValues: 100_000)
    }

    /// Why a document was refused: what and where (a byte offset).
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var reason: String
        public var offset: Int
        public var description: String { "\(reason) at byte \(offset)" }
    }

    /// Parses one JSON document (surrounding whitespace allowed, nothing else after it).
    public static func parse(_ bytes: some Collection<UInt8>, limits: Limits = .default) throws(ParseError) -> Value {
        guard bytes.count <= limits.maxBytes else {
            throw ParseError(reason: "document of \(bytes.count) bytes is above the limit of \(limits.maxBytes)", offset: 0)
        }
        var parser = Parser(bytes: Array(bytes), limits: limits)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == parser.bytes.count else { throw parser.error("unexpected bytes after the document") }
        return value
    }

    /// Parses a JSON text given as a string.
    public static func parse(_ text: String, limits: Limits = .default) throws(ParseError) -> Value {
        try parse(Array(text.utf8), limits: limits)
    }

    private struct Parser {
        let bytes: [UInt8]
        let limits: Limits
        var position = 0
        var values = 0

        init(bytes: [UInt8], limits: Limits) {
            self.bytes = bytes
            self.limits = limits
        }

        func error(_ reason: String) -> ParseError { ParseError(reason: reason, offset: position) }

        mutating func skipWhitespace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        mutating func expect(_ literal: StaticString) throws(ParseError) {
            let text = literal.withUTF8Buffer { Array($0) }
            guard bytes.count - position >= text.count, Array(bytes[position..<(position + text.count)]) == text else {
                throw error("expected \(literal)")
            }
            position += text.count
        }

        mutating func value(depth: Int) throws(ParseError) -> Value {
            values += 1
            guard values <= limits.maxValues else { throw error("more than \(limits.maxValues) values") }
            guard position < bytes.count else { throw error("document ends where a value should start") }
            switch bytes[position] {
            case UInt8(ascii: "{"):
                guard depth < limits.maxDepth else { throw error("nesting deeper than \(limits.maxDepth)") }
                return try object(depth: depth + 1)
            case UInt8(ascii: "["):
                guard depth < limits.maxDepth else { throw error("nesting deeper than \(limits.maxDepth)") }
                return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw error("unexpected byte 0x\(String(bytes[position], radix: 16)) where a value should start")
            }
        }

        mutating func object(depth: Int) throws(ParseError) -> Value {
            position += 1  // {
            var members: [(key: String, value: Value)] = []
            var keys: Set<String> = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object([]) }
            while true {
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected an object key") }
                let key = try string()
                guard keys.insert(key).inserted else { throw error("duplicate key \(PeerText.quoted(key))") }
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
                position += 1
                skipWhitespace()
                members.append((key, try value(depth: depth)))
                skipWhitespace()
                guard position < bytes.count else { throw error("object is not closed") }
                if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                if bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
                throw error("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) throws(ParseError) -> Value {
            position += 1  // [
            var items: [Value] = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array([]) }
            while true {
                skipWhitespace()
                items.append(try value(depth: depth))
                skipWhitespace()
                guard position < bytes.count else { throw error("array is not closed") }
                if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                if bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
                throw error("expected ',' or ']'")
            }
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard bytes.count - position >= 4 else { throw error("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw error("bad hex digit in \\u escape")
                }
                value = value << 4 | digit
                position += 1
            }
            return value
        }

        mutating func string() throws(ParseError) -> String {
            position += 1  // opening quote
            var runStart = position
            var text = ""
            func flush(_ end: Int) throws(ParseError) {
                guard runStart < end else { return }
                guard let run = String(validating: bytes[runStart..<end], as: UTF8.self) else {
                    throw ParseError(reason: "string is not valid UTF-8", offset: runStart)
                }
                text += run
            }
            while true {
                guard position < bytes.count else { throw error("string is not closed") }
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    try flush(position)
                    position += 1
                    return text
                }
                guard byte >= 0x20 else { throw error("control character 0x\(String(byte, radix: 16)) in a string") }
                if byte != UInt8(ascii: "\\") { position += 1; continue }
                try flush(position)
                position += 1
                guard position < bytes.count else { throw error("string ends inside an escape") }
                let escape = bytes[position]
                position += 1
                let scalar: Unicode.Scalar
                switch escape {
                case UInt8(ascii: "\""): scalar = "\""
                case UInt8(ascii: "\\"): scalar = "\\"
                case UInt8(ascii: "/"): scalar = "/"
                case UInt8(ascii: "b"): scalar = "\u{08}"
                case UInt8(ascii: "f"): scalar = "\u{0C}"
                case UInt8(ascii: "n"): scalar = "\n"
                case UInt8(ascii: "r"): scalar = "\r"
                case UInt8(ascii: "t"): scalar = "\t"
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"),
                              bytes[position + 1] == UInt8(ascii: "u") else { throw error("unpaired surrogate in \\u escape") }
                        position += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let decoded = Unicode.Scalar(code) else { throw error("\\u escape is not a Unicode scalar") }
                    scalar = decoded
                default: throw error("unknown escape \\\(Character(Unicode.Scalar(escape)))")
                }
                text.unicodeScalars.append(scalar)
                runStart = position
            }
        }

        mutating func number() throws(ParseError) -> Value {
            let start = position
            if bytes[position] == UInt8(ascii: "-") { position += 1 }
            func digits() -> Int {
                let first = position
                while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
                return position - first
            }
            let integerStart = position
            let integerDigits = digits()
            guard integerDigits > 0 else { throw error("a number needs digits") }
            guard integerDigits == 1 || bytes[integerStart] != UInt8(ascii: "0") else { throw error("leading zero in a number") }
            var isInteger = true
            if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
                position += 1
                guard digits() > 0 else { throw error("a fraction needs digits") }
                isInteger = false
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
                position += 1
                if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
                guard digits() > 0 else { throw error("an exponent needs digits") }
                isInteger = false
            }
            guard position - start <= 64 else { throw ParseError(reason: "number longer than 64 characters", offset: start) }
            let text = String(decoding: bytes[start..<position], as: UTF8.self)
            if isInteger {
                guard let value = Int64(text) else { throw ParseError(reason: "integer \(text) does not fit 64 bits", offset: start) }
                return .integer(value)
            }
            guard let value = Double(text), value.isFinite else { throw ParseError(reason: "number \(text) is not finite", offset: start) }
            return .number(value)
        }
    }
}

/// Text that came from outside the process (a peer, a file), made safe to put in an error message or a log line:
/// control characters and backslashes escaped, quotes escaped, and cut to a bounded length.
public enum PeerText {
    /// `text` escaped and cut to `maxCharacters` (with "…" when cut), without quotes.
    public static func escaped(_ text: some StringProtocol, maxCharacters: Int = 128) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= maxCharacters { out += "…"; break }
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.properties.generalCategory == .format
                    || scalar.properties.generalCategory == .lineSeparator || scalar.properties.generalCategory == .paragraphSeparator {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
            count += 1
        }
        return out
    }

    /// `text` escaped, cut and in double quotes.
    public static func quoted(_ text: some StringProtocol, maxCharacters: Int = 128) -> String {
        "\"" + escaped(text, maxCharacters: maxCharacters) + "\""
    }

    /// Whether `text` has no control or format characters (C0, DEL, C1, bidi controls, line separators).
    public static func isPrintable(_ text: some StringProtocol) -> Bool {
        text.unicodeScalars.allSatisfy { scalar in
            !(scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.properties.generalCategory == .format
              || scalar.properties.generalCategory == .lineSeparator || scalar.properties.generalCategory == .paragraphSeparator)
        }
    }
}
