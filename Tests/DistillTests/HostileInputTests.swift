import Foundation
import Testing
@testable import Distill

/// Bytes a hostile peer or a corrupt file can hand the parsers: each must give a clear error, never a trap, and never
/// make the parser allocate more than a small multiple of its input.
@Suite("Hostile input")
struct HostileInputTests {
    // MARK: Strict JSON

    @Test func strictJSONKeepsIntegersApartAndRefusesAmbiguity() throws {
        let value = try StrictJSON.parse(#" {"a": [1, -2, 3.5, 1e3, true, null, "x\u00e9\ud83d\ude00"], "b": {}} "#)
        #expect(value["a"] == .array([.integer(1), .integer(-2), .number(3.5), .number(1000), .bool(true), .null, .string("xé😀")]))
        #expect(value["b"] == .object([]))
        #expect(value["a"]?.integerArray == nil, "a fraction or a boolean is not an integer")
        #expect(try StrictJSON.parse("[1, 2]").integerArray == [1, 2])
        for bad in [#"{"a": 1, "a": 2}"#, "[01]", "[1.]", "[-]", "\"a\u{01}b\"", #""\ud800""#, "[1,]", "{\"a\" 1}", "[1] [2]",
                    "[99999999999999999999]", "[1e400]", "\"\\x\"", String(repeating: "[", count: 40) + String(repeating: "]", count: 40),
                    "", "nul", "\"abc", #"{"a":"#] {
            #expect(throws: StrictJSON.ParseError.self, "\(bad.debugDescription)") { try StrictJSON.parse(bad) }
        }
        #expect(throws: StrictJSON.ParseError.self, "invalid UTF-8") { try StrictJSON.parse([0x22, 0xFF, 0x22] as [UInt8]) }
        #expect(throws: StrictJSON.ParseError.self) {
            try StrictJSON.parse("[" + Array(repeating: "0", count: 20).joined(separator: ",") + "]",
                                 limits: .init(maxBytes: 1000, maxDepth: 4, maxValues: 10))
        }
    }

    @Test func peerTextEscapesControlAndFormatCharacters() {
        #expect(PeerText.escaped("node-1\nFAKE LOG LINE\u{1B}[31m\u{202E}") == #"node-1\nFAKE LOG LINE\u{1b}[31m\u{202e}"#)
        #expect(PeerText.escaped(String(repeating: "a", count: 300), maxCharacters: 10) == "aaaaaaaaaa…")
        #expect(PeerText.quoted("a\"b") == #""a\"b""#)
        #expect(PeerText.isPrintable("plain ünïcode") && !PeerText.isPrintable("bell\u{07}"))
    }

    // MARK: Safetensors

    /// A safetensors file with `header` (JSON text) and `data` bytes.
    func safetensors(_ header: String, data: [UInt8] = []) -> [UInt8] {
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) } + Array(header.utf8) + data
    }

    func rejects(_ bytes: [UInt8], containing fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try SafeTensors.decode(bytes, path: "hostile")
            Issue.record("accepted a hostile file", sourceLocation: sourceLocation)
        } catch {
            #expect(error.description.contains(fragment), "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func safetensorsRefusesOverflowingShapesAndOffsets() {
        let data = [UInt8](repeating: 0, count: 16)
        // Shapes whose element count × width overflows Int, and offsets far beyond the file.
        rejects(safetensors(#"{"t":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,16]}}"#, data: data),
                containing: "needs more bytes than the file has")
        rejects(safetensors(#"{"t":{"dtype":"I64","shape":[4611686018427387904],"data_offsets":[0,16]}}"#, data: data),
                containing: "bad shape")
        rejects(safetensors(#"{"t":{"dtype":"U8","shape":[16],"data_offsets":[9223372036854775807,9223372036854775807]}}"#, data: data),
                containing: "lie outside")
        rejects(safetensors(#"{"t":{"dtype":"U8","shape":[16],"data_offsets":[-1,15]}}"#, data: data), containing: "lie outside")
        rejects(safetensors(#"{"t":{"dtype":"U8","shape":[8],"data_offsets":[0,16]}}"#, data: data), containing: "do not fit shape")
    }

    @Test func safetensorsRefusesLenientFields() {
        let data = [UInt8](repeating: 0, count: 4)
        rejects(safetensors(#"{"t":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}"#, data: data), containing: "integers")
        rejects(safetensors(#"{"t":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, data: data), containing: "integers")
        rejects(safetensors(#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}"#, data: data), containing: "integers")
        rejects(safetensors(#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                            data: data), containing: "duplicate key")
        rejects(safetensors(#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}"#, data: data), containing: "exactly")
        rejects(safetensors(#"{"t":{"dtype":"F64","shape":[1],"data_offsets":[0,4]}}"#, data: data), containing: "unsupported dtype")
        rejects(safetensors(#"{"__metadata__":{"k":1}}"#), containing: "is not a string")
        rejects(safetensors(#"{"__metadata__":{"k":"v"},"__metadata__":{"k":"w"}}"#), containing: "duplicate key")
    }

    /// Many entries naming one byte range used to be copied one by one before the overlap check, so memory grew with
    /// the header. Now the ranges must tile the data before anything is copied.
    @Test func safetensorsChecksRangesBeforeCopying() {
        let data = [UInt8](repeating: 7, count: 1 << 16)
        let entries = (0..<2000).map { #""t\#($0)":{"dtype":"U8","shape":[65536],"data_offsets":[0,65536]}"# }
        rejects(safetensors("{" + entries.joined(separator: ",") + "}", data: data), containing: "overlap")
        rejects(safetensors(#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}}"#,
                            data: [1, 2, 3, 4]), containing: "gap")
        rejects(safetensors(#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#, data: [1, 2, 3]), containing: "belong to none")
        let tooMany = (0...4096).map { #""t\#($0)":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}"# }
        rejects(safetensors("{" + tooMany.joined(separator: ",") + "}"), containing: "more than 4096 tensors")
        var huge = safetensors("{}")
        huge[6] = 0x7F
        rejects(huge, containing: "exceeds the limit")
    }

    @Test func safetensorsStillReadsZeroSizedAndPaddedFiles() throws {
        let header = #"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}    "#
        let (entries, metadata) = try SafeTensors.decode(safetensors(header, data: [5, 6]), path: "ok")
        #expect(entries["a"]?.bytes == [] && entries["b"]?.bytes == [5, 6] && metadata.isEmpty)
    }

    // MARK: Synthetic-set metadata

    func sampleSet(counts: [Int] = [5, 6, 0, 0, 0, 0, 0, 0, 0, 0]) -> SyntheticSet {
        var rng = RandomSource(seed: 52)
        let data = LabeledImages(images: .normal([4, 1, 8, 8], using: &rng), labels: [0, 0, 1, 1], classCount: 10)
        return SyntheticSet(data: data, metadata: .init(dataset: "digits", imageShape: [1, 8, 8], classCount: 10,
                                                        normalization: DatasetCatalog.digits.normalization, method: "dm",
                                                        imagesPerClass: 2, iterations: 7, initialization: "noise", seed: 3,
                                                        sourceClassCounts: counts))
    }

    /// Re-encodes a set with one metadata string replaced.
    func withMetadata(_ key: String, _ value: String?, of set: SyntheticSet = HostileInputTests().sampleSet()) throws -> [UInt8] {
        var (entries, strings) = try SafeTensors.decode(set.encoded(), path: "s")
        strings[key] = value
        return SafeTensors.encode(entries, metadata: strings)
    }

    @Test func setMetadataIsRangeChecked() throws {
        let cases: [(String, String?, String)] = [
            ("source_class_counts", "[9223372036854775807,0,0,0,0,0,0,0,0,0]", "source_class_counts"),
            ("source_class_counts", "[1,2]", "entries for 10 classes"),
            ("source_class_counts", "[1.5,0,0,0,0,0,0,0,0,0]", "array of integers"),
            ("source_class_counts", "[-1,0,0,0,0,0,0,0,0,0]", "source_class_counts"),
            ("class_count", "1e9", "class_count"),
            ("class_count", "999999999999", "class_count"),
            ("ipc", "true", "ipc"),
            ("ipc", "0", "ipc"),
            ("image_shape", "[1, 8.0, 8]", "image_shape"),
            ("image_shape", "[1, 100000, 100000]", "image_shape"),
            ("normalization_std", "[0]", "std must be positive"),
            ("normalization_mean", "[1, 2]", "normalization_mean"),
            ("dataset", "digits\n2026-12-02 forged log line", "dataset"),
            ("dataset", "", "dataset"),
            ("seed", "-1", "seed"),
            ("differential_privacy", #"{"epsilon":-1,"delta":0,"noiseMultiplier":0,"sampleRate":2,"steps":-3,"clipNorm":0}"#, "differential_privacy"),
            ("privacy_audit", String(repeating: " ", count: 20_000), "above the limit"),
            ("privacy_audit", #"{"verdict":"pass\u0007"}"#, "control characters"),
            ("privacy_audit", "[1]", "not a JSON object"),
        ]
        for (key, value, fragment) in cases {
            do {
                _ = try SyntheticSet.decode(try withMetadata(key, value), path: "s")
                Issue.record("accepted \(key) = \(value ?? "nil")")
            } catch {
                #expect("\(error)".contains(fragment), "\(key): \(error)")
            }
        }
        let audit = #"{"attacks":{"dcr":{"auc":0.5}},"verdict":"pass"}"#
        #expect(try SyntheticSet.decode(try withMetadata("privacy_audit", audit), path: "s").metadata.privacyAudit == audit)
        #expect(try SyntheticSet.decode(try withMetadata("source_class_counts", nil), path: "s").metadata.sourceClassCounts == [])
    }

    @Test func setMayNotHoldMoreImagesPerClassThanItDeclares() throws {
        var set = sampleSet()
        set.data.labels = [0, 0, 0, 1]
        #expect(throws: DatasetError.self) { try SyntheticSet.decode(set.encoded(), path: "s") }
    }

    @Test func setIsCheckedAgainstTheRound() throws {
        let set = sampleSet()
        #expect(throws: Never.self) { try set.check(belongsTo: DatasetCatalog.digits, maxImagesPerClass: 2) }
        #expect(throws: DatasetError.self) { try set.check(belongsTo: DatasetCatalog.digits, maxImagesPerClass: 1) }
        var renamed = set
        renamed.metadata.dataset = "mnist"
        #expect(throws: DatasetError.self) { try renamed.check(belongsTo: DatasetCatalog.digits, maxImagesPerClass: 10) }
        var shifted = set
        shifted.metadata.normalization = Normalization(mean: [0.9], std: [0.1])
        #expect(throws: DatasetError.self) { try shifted.check(belongsTo: DatasetCatalog.digits, maxImagesPerClass: 10) }
        // A set may not declare a formation factor other than the round's: factor 4 would multiply its training
        // images (and the coordinator's memory) by 16.
        var formed = set
        formed.metadata.formationFactor = 4
        #expect(throws: DatasetError.self) { try formed.check(belongsTo: DatasetCatalog.digits, maxImagesPerClass: 10) }
        #expect(throws: Never.self) { try formed.check(belongsTo: DatasetCatalog.digits, maxImagesPerClass: 10, formationFactor: 4) }
        #expect(throws: DatasetError.self) { try set.check(belongsTo: DatasetCatalog.digits, maxImagesPerClass: 10, formationFactor: 2) }
    }

    /// A set's formation factor and its recipe's must agree: otherwise readers and audit shadows would train on
    /// different images.
    @Test func formationFactorMustMatchTheRecipe() throws {
        var set = sampleSet()
        set.metadata.recipe = DistillationRecipe(settings: .distributionMatching(.init(formationFactor: 2)))
        #expect(throws: DatasetError.self) { try SyntheticSet.decode(set.encoded(), path: "s") }
        set.metadata.formationFactor = 2
        #expect(try SyntheticSet.decode(set.encoded(), path: "s").trainingData.count == 4 * set.data.count)
    }

    // MARK: Other parsers

    @Test func npyRefusesOverflowAndTruncation() {
        func npy(_ header: String, data: [UInt8]) -> [UInt8] {
            [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)] + Array(header.utf8) + data
        }
        for header in ["{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }",
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807,), }",
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                       "{'descr': '|u1', 'fortran_order': False, 'shape': (-1,), }"] {
            #expect(throws: DatasetError.self, "\(header)") { try NPY.parse(npy(header, data: [1, 2, 3, 4]), path: "x.npy") }
        }
        #expect(throws: DatasetError.self) { try NPY.parse([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 2, 0, 0xFF, 0xFF], path: "x.npy") }
    }

    @Test func gunzipStopsAtItsOutputLimit() throws {
        let bomb = FileBytes.gzip([UInt8](repeating: 0, count: 4 << 20))
        #expect(bomb.count < 64 << 10)
        #expect(throws: DatasetError.self) { try FileBytes.gunzip(bomb, path: "bomb.gz", maxOutputBytes: 1 << 20) }
        #expect(try FileBytes.gunzip(bomb, path: "bomb.gz", maxOutputBytes: 4 << 20).count == 4 << 20)
    }
}
