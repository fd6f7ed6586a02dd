// libFuzzer target for gunzip (dataset files are read through it), with a small output limit so that bombs are
// caught. Built by scripts/fuzz.sh.

@_cdecl("LLVMFuzzerTestOneInput")
public func gzipFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let output = try? FileBytes.gunzip(bytes, path: "fuzz", maxOutputBytes: 1 << 20) {
        precondition(output.count <= (1 << 20) + (1 << 20), "output passed the limit by more than one chunk")
    }
    return 0
}

@_cdecl("LLVMFuzzerInitialize")
public func gzipFuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    writeSeed(FileBytes.gzip(Array("a few bytes of a dataset file".utf8)))
    return 0
}
