// libFuzzer target for the synthetic-set reader: safetensors container, strict JSON header, metadata validation.
// Built by scripts/fuzz.sh with the Distill parser sources (no SwiftPM, no BLAS calls on this path).

/// A valid set, written as the seed corpus (FUZZ_WRITE_SEED=PATH) so that mutations start from real structure.
func seedSet() -> [UInt8] {
    var rng = RandomSource(seed: 1)
    let data = LabeledImages(images: .normal([2, 1, 8, 8], using: &rng), labels: [0, 1], classCount: 10)
    var set = SyntheticSet(data: data, metadata: .init(
        dataset: "digits", imageShape: [1, 8, 8], classCount: 10, normalization: Normalization(mean: [0.3], std: [0.4]),
        method: "dm", imagesPerClass: 1, iterations: 1, initialization: "noise", seed: 0,
        sourceClassCounts: [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]))
    set.metadata.privacyAudit = #"{"verdict":"pass","attacks":{"dcr":{"auc":0.5}}}"#
    return set.encoded()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func safeTensorsFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let set = try? SyntheticSet.decode(bytes, path: "fuzz") {
        // What decodes must re-encode and decode to the same set: the validation holds for our own writer too.
        guard let again = try? SyntheticSet.decode(set.encoded(), path: "fuzz-again") else {
            fatalError("a decoded set does not decode after re-encoding")
        }
        precondition(again.data.labels == set.data.labels && again.metadata.classCount == set.metadata.classCount)
    }
    if let text = String(validating: bytes, as: UTF8.self) { _ = try? StrictJSON.parse(text) }
    return 0
}

@_cdecl("LLVMFuzzerInitialize")
public func safeTensorsFuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    writeSeed(seedSet())
    return 0
}
