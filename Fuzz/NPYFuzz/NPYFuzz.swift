// libFuzzer target for the .npy reader. Built by scripts/fuzz.sh.

@_cdecl("LLVMFuzzerTestOneInput")
public func npyFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let array = try? NPY.parse(bytes, path: "fuzz") {
        precondition(array.values.count == array.shape.reduce(1, *), "values do not match the shape")
    }
    return 0
}

@_cdecl("LLVMFuzzerInitialize")
public func npyFuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    writeSeed(NPY.encode(shape: [2, 3], values: [1, 2, 3, 4, 5, 6] as [Float]))
    return 0
}
