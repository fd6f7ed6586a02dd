#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a provisioning file could not be written or read.
public enum ProvisioningError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file exists and `overwrite` was not allowed.
    case fileExists(path: String)
    /// The file could not be created or written.
    case writeFailed(path: String, errno: Int32)
    /// The file could not be read.
    case readFailed(path: String, reason: String)
    /// A name is not a valid node or coordinator name.
    case invalidName(String, reason: String)
    /// A subject alternative name is neither a DNS name nor an IPv4/IPv6 address.
    case invalidSubjectAlternativeName(String)
    /// A certificate or key could not be built or encoded.
    case certificateFailed(reason: String)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case .fileExists(let path): return "\(path) already exists (use --force to replace it)"
        case .writeFailed(let path, let code): return "cannot write \(path): \(String(cString: strerror(code)))"
        case .readFailed(let path, let reason): return "cannot read \(path): \(reason)"
        case .invalidName(let name, let reason): return "invalid name \"\(name)\": \(reason)"
        case .invalidSubjectAlternativeName(let san): return "invalid subject alternative name \"\(san)\""
        case .certificateFailed(let reason): return "certificate error: \(reason)"
        }
    }
}

/// Writes files with a given mode from the start (`open(O_CREAT|O_EXCL, mode)`), so a private key is never
/// readable by others, not even for an instant.
enum SecureFile {
    /// Mode for private keys.
    static let privateMode: mode_t = 0o600
    /// Mode for certificates and public keys.
    static let publicMode: mode_t = 0o644

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Creates `path` with `mode` and writes `bytes`. With `overwrite`, an existing file is unlinked first and
    /// the new one is still created exclusively with `mode`.
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t, overwrite: Bool) throws(ProvisioningError) {
        if overwrite, exists(path), unlink(path) != 0 { throw .writeFailed(path: path, errno: errno) }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            if errno == EEXIST { throw .fileExists(path: path) }
            throw .writeFailed(path: path, errno: errno)
        }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { buffer in
                Glibc.write(fd, buffer.baseAddress.map { $0 + written }, bytes.count - written)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, errno: errno)
            }
            written += n
        }
        guard fsync(fd) == 0 else { throw .writeFailed(path: path, errno: errno) }
    }

    static func write(_ text: String, to path: String, mode: mode_t, overwrite: Bool) throws(ProvisioningError) {
        try write(Array(text.utf8), to: path, mode: mode, overwrite: overwrite)
    }

    /// Reads a whole (small) file.
    static func read(_ path: String, maxBytes: Int = 1 << 20) throws(ProvisioningError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .readFailed(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .readFailed(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            guard out.count + n <= maxBytes else {
                throw .readFailed(path: path, reason: "larger than \(maxBytes) bytes")
            }
            out.append(contentsOf: buffer[0..<n])
        }
        return out
    }

    static func readText(_ path: String) throws(ProvisioningError) -> String {
        String(decoding: try read(path), as: UTF8.self)
    }

    /// Creates a directory (mode 0700) if missing.
    /// Creates `path` and any missing parents with mode 0700 (like `mkdir -p`); existing directories are kept.
    static func makeDirectory(_ path: String) throws(ProvisioningError) {
        if mkdir(path, 0o700) == 0 || errno == EEXIST { return }
        guard errno == ENOENT else { throw .writeFailed(path: path, errno: errno) }
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        let parent = trimmed.lastIndex(of: "/").map { String(trimmed[..<$0]) } ?? ""
        guard !parent.isEmpty, parent != path else { throw .writeFailed(path: path, errno: ENOENT) }
        try makeDirectory(parent)
        if mkdir(path, 0o700) != 0, errno != EEXIST { throw .writeFailed(path: path, errno: errno) }
    }
}
