import CZlib
import Foundation

/// Reading whole files, transparently gunzipping `.gz` content (detected by its magic bytes, not the name).
public enum FileBytes {
    /// The bytes of `path`, decompressed when the file is gzip.
    public static func read(_ path: String) throws(DatasetError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw .fileNotFound(path: path) }
        let bytes = [UInt8](data)
        if bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B { return try gunzip(bytes, path: path) }
        return bytes
    }

    /// Largest decompressed file accepted by default (MNIST's largest file is 47 MB): a gzip bomb stops here.
    static let maximumDecompressedBytes = 1 << 30

    /// Decompresses a gzip stream (also concatenated members) with zlib, refusing output beyond `maxOutputBytes`.
    static func gunzip(_ input: [UInt8], path: String,
                       maxOutputBytes: Int = maximumDecompressedBytes) throws(DatasetError) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .malformed(path: path, reason: "zlib could not start")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        output.reserveCapacity(min(input.count.multipliedReportingOverflow(by: 4).partialValue, maxOutputBytes))
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var status: Int32 = Z_OK
        var input = input
        input.withUnsafeMutableBufferPointer { source in
            stream.next_in = source.baseAddress
            stream.avail_in = uInt(source.count)
            repeat {
                chunk.withUnsafeMutableBufferPointer { buffer in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = uInt(buffer.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    output.append(contentsOf: buffer[0..<(buffer.count - Int(stream.avail_out))])
                }
                if output.count > maxOutputBytes { status = Z_MEM_ERROR }
                if status == Z_STREAM_END && stream.avail_in > 0 {
                    status = inflateReset(&stream) == Z_OK ? Z_OK : Z_DATA_ERROR
                }
            } while status == Z_OK
        }
        guard status == Z_STREAM_END else {
            if output.count > maxOutputBytes {
                throw .malformed(path: path, reason: "gzip data expands beyond the limit of \(maxOutputBytes) bytes")
            }
            let reason = status == Z_BUF_ERROR ? "gzip stream ends early (truncated file)" : "corrupt gzip data"
            throw .malformed(path: path, reason: reason)
        }
        return output
    }

    /// Compresses bytes with zlib's deflate (used for PNG output).
    static func deflate(_ input: [UInt8]) -> [UInt8] {
        var length = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { inp in compress2(out.baseAddress, &length, inp.baseAddress, uLong(inp.count), 6) }
        }
        precondition(status == Z_OK, "zlib compress2 failed with \(status)")
        return Array(output[0..<Int(length)])
    }

    /// Compresses bytes into a gzip stream (zlib with a gzip wrapper).
    static func gzip(_ input: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        precondition(deflateInit2_(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                                   Int32(MemoryLayout<z_stream>.size)) == Z_OK, "zlib deflateInit2 failed")
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 32)
        var input = input
        let written = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                stream.next_in = source.baseAddress
                stream.avail_in = uInt(source.count)
                stream.next_out = target.baseAddress
                stream.avail_out = uInt(target.count)
                precondition(CZlib.deflate(&stream, Z_FINISH) == Z_STREAM_END, "zlib deflate did not finish")
                return target.count - Int(stream.avail_out)
            }
        }
        return Array(output[0..<written])
    }

    /// CRC-32 as used by PNG and gzip.
    static func crc32(_ bytes: [UInt8], initial: UInt = 0) -> UInt32 {
        UInt32(bytes.withUnsafeBufferPointer { CZlib.crc32(uLong(initial), $0.baseAddress, uInt($0.count)) })
    }
}

/// Big-endian reads with bounds checks; never traps on short input.
struct ByteReader {
    let bytes: [UInt8]
    let path: String

    func uint32BE(at offset: Int) throws(DatasetError) -> UInt32 {
        guard offset >= 0, offset + 4 <= bytes.count else {
            throw .truncated(path: path, expectedBytes: offset + 4, actualBytes: bytes.count)
        }
        return bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }
}
