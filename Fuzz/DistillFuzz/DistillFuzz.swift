// libFuzzer targets for the Distill parsers of outside bytes, in one binary (compiling the numeric core once):
// FUZZ_TARGET=safetensors|npy|idx|gzip chooses the parser. Built by scripts/fuzz.sh with the Distill sources, not by
// SwiftPM. Every target checks that nothing traps and that what parses is consistent.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum FuzzTarget: String {
    case safetensors, npy, idx, gzip
}

nonisolated(unsafe) var fuzzTarget = FuzzTarget.safetensors

@_cdecl("LLVMFuzzerTestOneInput")
public func distillFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    switch fuzzTarget {
    case .safetensors:
        if let set = try? SyntheticSet.decode(bytes, path: "fuzz") {
            // What decodes must re-encode and decode to the same set: the validation holds for our own writer too.
            guard let again = try? SyntheticSet.decode(set.encoded(), path: "fuzz-again") else {
                fatalError("a decoded set does not decode after re-encoding")
            }
            precondition(again.data.labels == set.data.labels && again.metadata == set.metadata)
        }
        if let text = String(validating: bytes, as: UTF8.self) { _ = try? StrictJSON.parse(text) }
    case .npy:
        if let array = try? NPY.parse(bytes, path: "fuzz") {
            precondition(array.values.count == array.shape.reduce(1, *), "values do not match the shape")
        }
    case .idx:
        if let images = try? IDXLoader.parseImages(bytes, path: "fuzz") {
            precondition(images.pixels.count == images.count * images.rows * images.cols)
        }
        _ = try? IDXLoader.parseLabels(bytes, path: "fuzz")
    case .gzip:
        if let output = try? FileBytes.gunzip(bytes, path: "fuzz", maxOutputBytes: 1 << 20) {
            precondition(output.count <= 2 << 20, "output passed the limit by more than one chunk")
        }
    }
    return 0
}

/// A valid input per target: the corpus starts from real structure.
func seed(for target: FuzzTarget) -> [UInt8] {
    switch target {
    case .safetensors:
        var rng = RandomSource(seed: 1)
        let data = LabeledImages(images: .normal([2, 1, 8, 8], using: &rng), labels: [0, 1], classCount: 10)
        var set = SyntheticSet(data: data, metadata: .init(
            dataset: "digits", imageShape: [1, 8, 8], classCount: 10, normalization: Normalization(mean: [0.3], std: [0.4]),
            method: "dm", imagesPerClass: 1, iterations: 1, initialization: "noise", seed: 0,
            sourceClassCounts: [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]))
        set.metadata.privacyAudit = #"{"verdict":"pass","attacks":{"dcr":{"auc":0.5}}}"#
        set.metadata.recipe = DistillationRecipe()
        return set.encoded()
    case .npy: return NPY.encode(shape: [2, 3], values: [1, 2, 3, 4, 5, 6] as [Float])
    case .idx: return [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3] + (0..<12).map { UInt8($0) }
    case .gzip: return FileBytes.gzip(Array("a few bytes of a dataset file".utf8))
    }
}

/// Reads FUZZ_TARGET; with FUZZ_WRITE_SEED=PATH also writes the target's seed input there.
@_cdecl("LLVMFuzzerInitialize")
public func distillFuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    if let name = getenv("FUZZ_TARGET").map({ String(cString: $0) }) {
        guard let target = FuzzTarget(rawValue: name) else { fatalError("unknown FUZZ_TARGET \(name)") }
        fuzzTarget = target
    }
    if let path = getenv("FUZZ_WRITE_SEED"), let file = fopen(path, "wb") {
        let bytes = seed(for: fuzzTarget)
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    return 0
}
