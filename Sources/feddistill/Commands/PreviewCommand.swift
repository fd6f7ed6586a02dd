import ArgumentParser
import Distill
import FederationProtocol
import Foundation

/// Data-marketplace previews: a seller signs a distilled set with its audit report and recipe; a buyer verifies it
/// and evaluates it on the buyer's own test data.
struct PreviewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preview", abstract: "Create, verify and evaluate signed data-marketplace previews.",
        discussion: """
            A preview is a synthetic set, the seller's `audit --json` report on it and its recipe, signed with the \
            seller's Ed25519 key (`keys generate`). It reveals the set's images (whatever they show of the seller's \
            data), its recipe (method, budget, network, privacy guarantee) and the audit's figures; it does not \
            contain any real record, the members and non-members the audit used, or the networks trained on private \
            data. The signature proves who published it and that nothing changed, not that the audit is honest: a \
            buyer who doubts it can audit the set against records of their own (`audit`).
            """,
        subcommands: [Create.self, Verify.self, Evaluate.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign a set, its audit report and recipe into a preview file.")

        @Option(help: "Synthetic set (safetensors).") var set: String
        @Option(name: .customLong("audit-report"), help: "The seller's `audit --set SET --json` report on this set.") var auditReport: String
        @Option(name: .customLong("signing-key"), help: "The seller's NAME.signing.key.") var signingKey: String
        @Option(help: "Seller name (a-z, 0-9, '-', '.').") var seller: String
        @Option(help: "Free-text description for buyers.") var description = ""
        @Flag(name: .customLong("allow-failed-audit"), help: "Publish even though the audit's verdict is fail.") var allowFailedAudit = false
        @Option(help: "Preview file to write.") var out: String

        func validate() throws {
            do { try NodeName.validate(seller) } catch { throw ValidationError(error.description) }
            guard description.utf8.count <= 4096 else { throw ValidationError("--description is limited to 4096 bytes") }
        }

        func run() throws {
            let bytes: [UInt8]
            let synthetic: SyntheticSet
            do {
                bytes = Array(try Data(contentsOf: URL(fileURLWithPath: set)))
                synthetic = try SyntheticSet.decode(bytes, path: set)
            } catch { throw CommandFailure("cannot read the set: \(error)") }
            guard let recipe = synthetic.metadata.recipe else {
                throw CommandFailure("\(set) records no recipe (sets written by `distill` and nodes do); a preview must carry it")
            }
            let reportText: String
            do { reportText = try String(contentsOfFile: auditReport, encoding: .utf8) } catch {
                throw CommandFailure("cannot read \(auditReport): \(error.localizedDescription)")
            }
            guard let report = try? JSONSerialization.jsonObject(with: Data(reportText.utf8)) as? [String: Any] else {
                throw CommandFailure("\(auditReport) is not an `audit --json` report (not a JSON object)")
            }
            guard let digest = report["set_sha256"] as? String else {
                throw CommandFailure("\(auditReport) does not name the set it audited (re-run `audit --json`, which records set_sha256)")
            }
            guard digest == sha256Hex(bytes) else { throw CommandFailure("\(auditReport) is the audit of another set (SHA-256 differs)") }
            guard let verdict = report["verdict"] as? String else { throw CommandFailure("\(auditReport) has no verdict") }
            if verdict != "pass" && !allowFailedAudit {
                throw CommandFailure("the audit's verdict is \(verdict): the set may leak its records (--allow-failed-audit publishes anyway)")
            }
            do {
                let keys = try KeyFiles.readSigningKeys(signingKey)
                let preview = try SignedPreview.create(set: bytes, seller: seller, keys: keys, description: description,
                                                       recipe: recipe.json(), auditReport: reportText)
                try Data(preview.encoded()).write(to: URL(fileURLWithPath: out), options: .atomic)
            } catch { throw CommandFailure(error) }
            print("wrote \(out): \(synthetic.data.count) images, audit verdict \(verdict), signed by \(seller)")
        }
    }

    /// The options naming a preview and the seller key it must verify with.
    struct PreviewFile: ParsableArguments {
        @Option(help: "Preview file.") var preview: String
        @Option(name: .customLong("seller-key"), help: "The seller's NAME.signing.pub, obtained from the seller out of band.") var sellerKey: String

        /// Reads at most what a preview can hold from a regular file, verifies the signature, then checks that the
        /// signed audit report and recipe are this set's: nothing unverified or unbound is returned.
        func open() throws -> (preview: SignedPreview, set: SyntheticSet, verdict: String) {
            let key: SigningPublicKey
            do { key = try KeyFiles.readSigningPublicKey(sellerKey) } catch { throw CommandFailure(error) }
            let limit = SignedPreview.maximumSetBytes + SignedPreview.maximumManifestBytes + 4096
            let bytes: [UInt8]
            do {
                let attributes = try FileManager.default.attributesOfItem(atPath: preview)
                guard attributes[.type] as? FileAttributeType == .typeRegular else { throw CommandFailure("\(preview) is not a regular file") }
                let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: preview))
                defer { try? handle.close() }
                bytes = Array(try handle.read(upToCount: limit + 1) ?? Data())
            } catch let failure as CommandFailure { throw failure } catch {
                throw CommandFailure("cannot read \(preview): \(error.localizedDescription)")
            }
            guard bytes.count <= limit else { throw CommandFailure("\(preview) is larger than any preview can be") }
            let verified: SignedPreview
            let synthetic: SyntheticSet
            do {
                verified = try SignedPreview.verify(bytes, sellerKey: key)
                synthetic = try SyntheticSet.decode(verified.set, path: preview + " (set)")
            } catch { throw CommandFailure(error) }
            let manifest = verified.manifest
            do { try NodeName.validate(manifest.seller) } catch { throw CommandFailure("preview rejected: the seller name is not valid") }
            guard let report = (try? JSONSerialization.jsonObject(with: Data(manifest.auditReport.utf8))) as? [String: Any],
                  let verdict = report["verdict"] as? String, ["pass", "fail"].contains(verdict) else {
                throw CommandFailure("preview rejected: the signed audit report is not an `audit --json` report")
            }
            guard report["set_sha256"] as? String == manifest.setSHA256 else {
                throw CommandFailure("preview rejected: the signed audit report is about another set")
            }
            guard let recipe = try? DistillationRecipe.decode(json: manifest.recipe), recipe == synthetic.metadata.recipe else {
                throw CommandFailure("preview rejected: the signed recipe differs from the set's own")
            }
            return (verified, synthetic, verdict)
        }
    }

    /// Text from the seller, safe for a terminal: control characters (escape sequences, carriage returns) shown as
    /// `?`, at most `limit` characters.
    static func printable(_ text: String, limit: Int = 200) -> String {
        String(text.unicodeScalars.prefix(limit).map { scalar -> Character in
            scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format ? "?" : Character(scalar)
        })
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a preview's signature and show what it contains.")
        @OptionGroup var file: PreviewFile
        @Option(help: "Write the verified manifest as JSON to this file (- for stdout).") var json: String?

        func run() throws {
            let (preview, synthetic, verdict) = try file.open()
            let manifest = preview.manifest
            print("signature: valid (seller \(manifest.seller), key \(manifest.sellerPublicKey.prefix(16))…, created \(printable(manifest.created, limit: 40)))")
            print("set: \(synthetic.data.count) images of \(printable(synthetic.metadata.dataset, limit: 40)), SHA-256 \(manifest.setSHA256.prefix(16))…")
            if let recipe = synthetic.metadata.recipe {
                print("recipe: \(recipe.method.rawValue), \(recipe.imagesPerClass) per class, \(recipe.iterations) iterations"
                      + (synthetic.metadata.privacy.map { String(format: ", DP ε = %.2f, δ = %g", $0.epsilon, $0.delta) } ?? ""))
            }
            print("audit verdict (the seller's, bound to this set): \(verdict)")
            if !manifest.description.isEmpty { print("description: \(printable(manifest.description, limit: 4096))") }
            if let json {
                try writeJSON(["seller": manifest.seller, "seller_public_key": manifest.sellerPublicKey, "created": manifest.created,
                               "set_sha256": manifest.setSHA256, "images": synthetic.data.count, "dataset": synthetic.metadata.dataset,
                               "verdict": verdict, "recipe": manifest.recipe, "description": manifest.description,
                               "audit_report": manifest.auditReport], to: json)
            }
        }
    }

    struct Evaluate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a preview, then train on its set and test on the buyer's own test data.",
            discussion: "Refuses a preview whose signature does not verify with --seller-key before training anything.")
        @OptionGroup var file: PreviewFile
        @Option(help: "Dataset whose test split is the buyer's test data (default: the set's).") var dataset: String?
        @OptionGroup var evaluation: EvaluationOptions
        @OptionGroup var data: DataOptions

        func run() throws {
            let (preview, synthetic, _) = try file.open()
            let splits: DatasetSplits
            do { splits = try data.store.load(dataset ?? synthetic.metadata.dataset) } catch { throw CommandFailure(error) }
            print("preview by \(preview.manifest.seller): signature valid, audit report and recipe bound to the set")
            try evaluation.evaluate(synthetic, label: file.preview, splits: splits)
        }
    }
}
