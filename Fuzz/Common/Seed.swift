// Shared by the Distill fuzz targets (scripts/fuzz.sh compiles it into each).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// With `FUZZ_WRITE_SEED=PATH`, writes `bytes` to PATH before fuzzing starts, so the corpus starts from a valid input.
func writeSeed(_ bytes: [UInt8]) {
    guard let path = getenv("FUZZ_WRITE_SEED"), let file = fopen(path, "wb") else { return }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
}
