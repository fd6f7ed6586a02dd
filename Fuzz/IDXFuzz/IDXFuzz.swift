// libFuzzer target for the IDX (MNIST) reader, images and labels. Built by scripts/fuzz.sh.

@_cdecl("LLVMFuzzerTestOneInput")
public func idxFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let images = try? IDXLoader.parseImages(bytes, path: "fuzz") {
        precondition(images.pixels.count == images.count * images.rows * images.cols)
    }
    _ = try? IDXLoader.parseLabels(bytes, path: "fuzz")
    return 0
}

@_cdecl("LLVMFuzzerInitialize")
public func idxFuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    // Two 2×3 images.
    writeSeed([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3] + (0..<12).map { UInt8($0) })
    return 0
}
