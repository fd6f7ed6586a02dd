import ArgumentParser
import Distill
import FederationProtocol
import Foundation
import Node
import Testing
@testable import feddistill

@Suite("Command line")
struct CommandLineTests {
    @Test func everySubcommandHasHelp() throws {
        for path in [[], ["datasets"], ["datasets", "fetch"], ["datasets", "info"], ["train"], ["bench"], ["gate-rates"], ["evaluate"], ["nas"], ["preview"],
                     ["preview", "create"], ["preview", "verify"], ["preview", "evaluate"],
                     ["continual"]] {
            let text = FedDistillCommand.helpMessage(for: try #require(subcommand(path)))
            #expect(text.contains("USAGE"), "help for \(path)")
            #expect(!text.contains("\\\n"), "help for \(path) shows a line continuation")
        }
    }

    func subcommand(_ path: [String]) -> (any ParsableCommand.Type)? {
        var command: any ParsableCommand.Type = FedDistillCommand.self
        for name in path {
            guard let next = command.configuration.subcommands.first(where: { $0._commandName == name }) else { return nil }
            command = next
        }
        return command
    }

    @Test func unknownOptionsAreUsageErrors() {
        let distill = ["distill", "--out", "x.safetensors"]
        let evaluate = ["evaluate", "--set", "s.safetensors"]
        #expect((try? FedDistillCommand.parseAsRoot(evaluate + ["--arch", "ResNet18BN_AP,mlp", "--attack", "pgd", "--eps", "0.1,0.3"]))
                is EvaluateCommand)
        let audit = ["audit", "--set", "s.safetensors", "--members", "digits:train:0-10@1", "--nonmembers", "digits:train:10-20@1"]
        #expect((try? FedDistillCommand.parseAsRoot(audit + ["--alpha", "0.005", "--permutations", "4000"])) is AuditCommand)
        for arguments in [["train", "--bogus"], ["datasets", "info"], ["bench", "--batch", "zero"], ["nonsense"],
                          ["train", "--subset", "all:3"], ["train", "--threads", "0"], ["train", "--norm", "weird"],
                          distill + ["--dp-epsilon", "1", "--init", "real"], distill + ["--dp-epsilon", "1", "--method", "dc"],
                          distill + ["--dp-epsilon=0"], distill + ["--dp-epsilon", "1", "--dp-delta", "2"],
                          distill + ["--dp-epsilon", "1", "--norm", "batch"], distill + ["--snapshot-every", "0"],
                          distill + ["--snapshot-every", "5", "--method", "random"], ["simulate", "--dp-epsilon=-2"],
                          ["status", "--coordinator", "h:1", "--name", "n", "--service", "feddistill.round"],
                          ["gate-rates", "--kinds", "control,bogus"], ["gate-rates", "--alpha", "0"], ["gate-rates", "--records-per-class", "4"],
                          ["gate-rates", "--recipe-json", "r.json", "--bank", "3"], ["gate-rates", "--dp-epsilon", "-1"],
                          audit + ["--alpha", "0"], audit + ["--alpha", "1"], audit + ["--permutations", "5"],
                          ["simulate", "--dp-epsilon", "none"], ["simulate", "--min-records-per-class", "-1"],
                          evaluate + ["--arch", "convnet,resnet50"], evaluate + ["--arch", ""], evaluate + ["--attack", "fgsm"],
                          evaluate + ["--eps", "0.1"], evaluate + ["--attack", "cw", "--eps", "0.1"],
                          evaluate + ["--attack", "pgd", "--eps", "0.1,2"], evaluate + ["--attack", "pgd", "--eps", "0.1", "--pgd-steps", "0"],
                          ["bench", "--arch", "convnet"], ["bench", "--arch", "vgg19"], ["nas", "--set", "s", "--candidates", "1"],
                          ["nas", "--set", "s", "--real-per-class", "-1"], ["nas", "--set", "s", "--target-epochs", "0"],
                          ["continual", "--memory", "distilled,coreset"], ["continual", "--tasks", "1"], ["continual", "--bank", "-1"],
                          ["continual", "--ipc", "0"]] {
            #expect(throws: (any Error).self, "\(arguments)") { _ = try FedDistillCommand.parseAsRoot(arguments) }
            do {
                _ = try FedDistillCommand.parseAsRoot(arguments)
            } catch {
                #expect(FedDistillCommand.exitCode(for: error) != .success, "\(arguments)")
            }
        }
    }

    /// `gate-rates` runs the node's gate on fresh draws and reports per kind; copied member records are refused.
    @Test func gateRatesReportsEachKind() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-gate-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let command = try #require(try FedDistillCommand.parseAsRoot([
            "gate-rates", "--runs", "2", "--records-per-class", "20", "--kinds", "control,copies", "--bank", "0", "--iterations", "3",
            "--width", "8", "--epochs", "10", "--json", directory + "/rates.json",
        ]) as? GateRatesCommand)
        try command.run()
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/rates.json")))
                                  as? [String: Any])
        let copies = try #require(report["copies"] as? [String: Any]), control = try #require(report["control"] as? [String: Any])
        #expect(copies["runs"] as? Int == 2 && copies["refused"] as? Int == 2)
        #expect(control["runs"] as? Int == 2 && report["node"] == nil && report["alpha"] as? Double == 0.005)
        #expect(throws: CommandFailure.self) {
            try #require(try FedDistillCommand.parseAsRoot(["gate-rates", "--records-per-class", "100"]) as? GateRatesCommand).run()
        }
    }

    /// "FIRST-LAST@SEED" takes FIRST..<LAST of one seeded shuffle: two ranges of one seed are disjoint and together
    /// cover their records, the same seed gives the same records, another seed others; malformed ranges are errors.
    @Test func shuffledRangesAreDisjointSlicesOfOneOrder() throws {
        let count = 200
        let records = LabeledImages(images: Tensor(shape: [count, 1, 1, 1], storage: (0..<count).map(Float.init)),
                                    labels: (0..<count).map { $0 % 10 }, classCount: 10)
        func ids(_ range: String) throws -> [Int] { try records.records(inRange: range, what: "range").images.storage.map { Int($0) } }
        #expect(try ids("10-20") == Array(10..<20))
        let first = try ids("0-100@3"), second = try ids("100-200@3")
        #expect(Set(first).isDisjoint(with: second) && Set(first + second) == Set(0..<count))
        #expect(first != Array(0..<100) && first.sorted() != Array(0..<100))
        #expect(try ids("0-100@3") == first && ids("0-100@4") != first)
        for bad in ["0-100@", "0-100@x", "0-100@1@2", "100-0@1", "0-201@1", "-5@1", "5"] {
            #expect(throws: CommandFailure.self) { try records.records(inRange: bad, what: "range") }
        }
    }

    /// `audit` warns when members and non-members are ranges of one split's stored order or come from two splits of one
    /// dataset, and only then.
    @Test func auditWarnsAboutStoredOrderRanges() {
        #expect(AuditCommand.orderWarning(members: "mnist:train:0-1000", nonMembers: "mnist:train:1000-2000")?.contains("@SEED") == true)
        #expect(AuditCommand.orderWarning(members: "mnist:train:0-1000@1", nonMembers: "mnist:train:1000-2000@1") == nil)
        #expect(AuditCommand.orderWarning(members: "mnist:train:0-1000@2", nonMembers: "mnist:test:0-1000@2")?.contains("different splits") == true)
        #expect(AuditCommand.orderWarning(members: "mnist:train:0-1000", nonMembers: "digits:train:0-1000") == nil)
        #expect(AuditCommand.orderWarning(members: "@members.safetensors", nonMembers: "mnist:train:0-1000") == nil)
    }

    /// `simulate` keeps a node's privacy defaults and refuses, before it starts any process, partitions that hold no
    /// class with the minimum records (the digits' nodes hold a few dozen); `--dp-epsilon` takes `off`.
    @Test func simulateRefusesPartitionsBelowTheMinimum() throws {
        let command = try #require(try FedDistillCommand.parseAsRoot(["simulate", "--dataset", "digits", "--nodes", "4"]) as? SimulateCommand)
        #expect(command.minRecordsPerClass == NodeConfiguration.defaultMinRecordsPerClass)
        do {
            try command.checkPartitions(train: try DatasetStore.resolve(explicit: nil).load("digits").train)
            Issue.record("simulate accepted partitions below the minimum")
        } catch {
            let message = String(describing: error)
            #expect(message.contains("min_records_per_class is \(NodeConfiguration.defaultMinRecordsPerClass)")
                    && message.contains("--dp-epsilon off --min-records-per-class 0"), "\(message)")
        }
        let off = try #require(try FedDistillCommand.parseAsRoot(["simulate", "--dp-epsilon", "off", "--min-records-per-class", "0"]) as? SimulateCommand)
        #expect(numberOrOff(off.dpEpsilon) == .some(nil))
        #expect(throws: (any Error).self) { _ = try FedDistillCommand.parseAsRoot(["simulate", "--dp-epsilon", "nope"]) }
    }

    /// `evaluate --arch` reports each architecture (the first at the top level of the JSON) with robust accuracy per
    /// budget; an architecture the images are too small for fails before any training, naming it.
    @Test func evaluateReportsEachArchitecture() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-arch-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let set = directory + "/random.safetensors"
        try #require(try FedDistillCommand.parseAsRoot(["distill", "--dataset", "digits", "--method", "random", "--ipc", "5",
                                                        "--out", set]) as? DistillCommand).run()
        let command = try #require(try FedDistillCommand.parseAsRoot([
            "evaluate", "--set", set, "--arch", "mlp,convnet", "--models", "1", "--epochs", "3", "--width", "8", "--no-dsa",
            "--attack", "fgsm", "--eps", "0.1,0.2", "--json", directory + "/report.json",
        ]) as? EvaluateCommand)
        try command.run()
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/report.json")))
                                  as? [String: Any])
        #expect(report["architecture"] as? String == "mlp")
        let architectures = try #require(report["architectures"] as? [[String: Any]])
        #expect(architectures.compactMap { $0["architecture"] as? String } == ["mlp", "convnet"])
        let robust = try #require(architectures[1]["robust"] as? [[String: Any]])
        #expect(robust.compactMap { $0["epsilon"] as? Double } == [0.1, 0.2] && robust.allSatisfy { $0["attack"] as? String == "fgsm" })
        let tooSmall = try #require(try FedDistillCommand.parseAsRoot(["evaluate", "--set", set, "--arch", "mlp,vgg11",
                                                                       "--json", directory + "/never.json"]) as? EvaluateCommand)
        #expect { try tooSmall.run() } throws: { "\($0)".contains("vgg11") && "\($0)".contains("too small") }
        #expect(!FileManager.default.fileExists(atPath: directory + "/never.json"))
    }

    /// `nas` ranks the candidates on the set, on random real images and on real data, and writes one JSON report.
    @Test func nasReportsEachProxy() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-nas-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let set = directory + "/random.safetensors"
        try #require(try FedDistillCommand.parseAsRoot(["distill", "--dataset", "digits", "--method", "random", "--ipc", "3",
                                                        "--out", set]) as? DistillCommand).run()
        try #require(try FedDistillCommand.parseAsRoot([
            "nas", "--set", set, "--candidates", "3", "--proxy-epochs", "3", "--target-epochs", "1", "--real-per-class", "20",
            "--random-baseline", "--json", directory + "/nas.json",
        ]) as? NASCommand).run()
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/nas.json")))
                                  as? [String: Any])
        #expect((report["candidates"] as? [[String: Any]])?.count == 3 && report["real_images"] as? Int == 200)
        let proxies = try #require(report["proxies"] as? [[String: Any]])
        #expect(proxies.compactMap { $0["proxy"] as? String } == ["proxy", "random"])
        #expect(proxies.allSatisfy { ($0["spearman"] as? Double).map { (-1...1).contains($0) } ?? false })
    }

    /// A seller signs a set with its audit report; a buyer verifies and evaluates it. A report on another set, a failed
    /// audit and another seller's key are refused, each naming why, and nothing is written or trained.
    @Test func previewCreateVerifyEvaluate() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-preview-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func run(_ arguments: [String]) throws {
            var command = try FedDistillCommand.parseAsRoot(arguments)
            try command.run()
        }
        try run(["keys", "generate", "--dir", directory, "--name", "seller"])
        try run(["keys", "generate", "--dir", directory, "--name", "stranger"])
        for name in ["a", "b"] {
            try run(["distill", "--dataset", "digits", "--method", "random", "--ipc", "2", "--seed", name == "a" ? "1" : "2",
                     "--out", "\(directory)/\(name).safetensors"])
        }
        // Members and non-members from one shuffled order; a 2-per-class random set of 1,400 records passes or fails
        // by chance, so the test reads the verdict the report carries.
        let audit = ["audit", "--set", directory + "/a.safetensors", "--members", "digits:train:0-700@5",
                     "--nonmembers", "digits:train:700-1400@5", "--no-baseline", "--json", directory + "/audit.json"]
        do { try run(audit) } catch let code as ExitCode where code.rawValue == 3 {}
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/audit.json")))
                                  as? [String: Any])
        let passed = report["verdict"] as? String == "pass"
        let create = ["preview", "create", "--set", directory + "/a.safetensors", "--audit-report", directory + "/audit.json",
                      "--signing-key", directory + "/seller.signing.key", "--seller", "acme", "--out", directory + "/p.fdp"]
        #expect { try run(create.map { $0 == directory + "/a.safetensors" ? directory + "/b.safetensors" : $0 }) } throws: {
            "\($0)".contains("another set")
        }
        // The same report with a failed verdict is refused unless the seller insists.
        var failed = report
        failed["verdict"] = "fail"
        try JSONSerialization.data(withJSONObject: failed).write(to: URL(fileURLWithPath: directory + "/failed.json"))
        let createFailed = create.map { $0 == directory + "/audit.json" ? directory + "/failed.json" : $0 }
        #expect { try run(createFailed) } throws: { "\($0)".contains("verdict is fail") }
        #expect(!FileManager.default.fileExists(atPath: directory + "/p.fdp"))
        try run(create + (passed ? [] : ["--allow-failed-audit"]))
        // Signed by the seller but binding a report on another set, or another recipe: refused on the buyer's side.
        let keys = try KeyFiles.readSigningKeys(directory + "/seller.signing.key")
        let setBytes = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/a.safetensors")))
        let recipe = try #require(try SyntheticSet.read(directory + "/a.safetensors").metadata.recipe)
        let reportText = try String(contentsOfFile: directory + "/audit.json", encoding: .utf8)
        var otherRecipe = recipe
        otherRecipe.imagesPerClass += 1
        for (name, report, recipeText, reason) in [
            ("unbound", reportText.replacingOccurrences(of: sha256Hex(setBytes), with: String(repeating: "0", count: 64)),
             recipe.json(), "about another set"),
            ("recipe", reportText, otherRecipe.json(), "recipe differs"),
        ] {
            let forged = try SignedPreview.create(set: setBytes, seller: "acme", keys: keys, description: "", recipe: recipeText,
                                                  auditReport: report)
            try Data(forged.encoded()).write(to: URL(fileURLWithPath: "\(directory)/\(name).fdp"))
            #expect { try run(["preview", "verify", "--preview", "\(directory)/\(name).fdp", "--seller-key", directory + "/seller.signing.pub"]) }
                throws: { "\($0)".contains(reason) }
        }
        #expect(PreviewCommand.printable("ok\u{1B}[2J\r\nx") == "ok?[2J??x")
        try run(["preview", "verify", "--preview", directory + "/p.fdp", "--seller-key", directory + "/seller.signing.pub",
                 "--json", directory + "/verified.json"])
        let verified = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/verified.json")))
                                    as? [String: Any])
        #expect(verified["seller"] as? String == "acme" && verified["verdict"] as? String == report["verdict"] as? String)
        #expect { try run(["preview", "verify", "--preview", directory + "/p.fdp", "--seller-key", directory + "/stranger.signing.pub"]) }
            throws: { "\($0)".contains("does not verify") }
        try run(["preview", "evaluate", "--preview", directory + "/p.fdp", "--seller-key", directory + "/seller.signing.pub",
                 "--models", "1", "--epochs", "2", "--width", "8", "--json", directory + "/eval.json"])
        let evaluation = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/eval.json")))
                                      as? [String: Any])
        #expect(evaluation["dataset"] as? String == "digits" && (evaluation["accuracies"] as? [Double])?.count == 1)
    }

    /// `continual` compares memories task by task and writes them to one JSON report.
    @Test func continualComparesMemories() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-cl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try #require(try FedDistillCommand.parseAsRoot([
            "continual", "--tasks", "2", "--ipc", "2", "--memory", "random,distilled", "--bank", "0", "--iterations", "3",
            "--distill-width", "8", "--width", "8", "--epochs", "5", "--no-dsa", "--json", directory + "/cl.json",
        ]) as? ContinualCommand).run()
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/cl.json")))
                                  as? [String: Any])
        let memories = try #require(report["memories"] as? [[String: Any]])
        #expect(memories.compactMap { $0["memory"] as? String } == ["random", "distilled"])
        #expect(memories.allSatisfy { ($0["average"] as? [Double])?.count == 2 && ($0["per_task"] as? [[Double]])?.count == 2 })
        #expect((report["tasks"] as? [[Int]]) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    }

    @Test func trainParsesItsOptions() throws {
        let command = try #require(try FedDistillCommand.parseAsRoot(
            ["train", "--dataset", "mnist", "--subset", "random:10", "--epochs", "3", "--width", "64", "--seed", "4", "--json", "r.json"])
            as? TrainCommand)
        #expect(command.dataset == "mnist" && command.epochs == 3 && command.model.width == 64 && command.seed == 4)
        #expect(TrainCommand.parseSubset("random:10") == 10)
    }

    /// `distill --dp-epsilon --bank 0` (plain DP-DM) writes a set whose metadata carries its guarantee; snapshots carry
    /// the (smaller) ε of their own iteration count. With a bank every release happens before the first iteration: one
    /// per entry, the same guarantee for every snapshot.
    @Test func distillWithDifferentialPrivacyRecordsItsGuarantee() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-dp-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let banked = try #require(try FedDistillCommand.parseAsRoot([
            "distill", "--dataset", "digits", "--ipc", "1", "--iterations", "4", "--width", "8", "--dp-epsilon", "3",
            "--bank", "3", "--snapshot-every", "2", "--out", directory + "/bank.safetensors",
        ]) as? DistillCommand)
        try banked.run()
        let bankGuarantee = try #require(try SyntheticSet.read(directory + "/bank.safetensors").metadata.privacy)
        #expect(bankGuarantee.steps == 3 && bankGuarantee.epsilon <= 3 && bankGuarantee.epsilon > 2.9)
        #expect(try SyntheticSet.read(directory + "/bank-it2.safetensors").metadata.privacy == bankGuarantee)
        let command = try #require(try FedDistillCommand.parseAsRoot([
            "distill", "--dataset", "digits", "--ipc", "1", "--iterations", "4", "--width", "8", "--dp-epsilon", "3",
            "--bank", "0", "--snapshot-every", "2", "--out", directory + "/set.safetensors",
        ]) as? DistillCommand)
        try command.run()
        let set = try SyntheticSet.read(directory + "/set.safetensors")
        let privacy = try #require(set.metadata.privacy)
        #expect(privacy.steps == 4 && privacy.epsilon <= 3 && privacy.epsilon > 2.9 && privacy.delta == 1e-5)
        #expect(privacy.noiseMultiplier > 1 && privacy.clipNorm == PrivacyBudget.defaultClipNorm(featureShape: [8, 1, 1]))
        let snapshot = try SyntheticSet.read(directory + "/set-it2.safetensors")
        let early = try #require(snapshot.metadata.privacy)
        #expect(early.steps == 2 && early.epsilon < privacy.epsilon && early.noiseMultiplier == privacy.noiseMultiplier)
        #expect(snapshot.metadata.iterations == 2 && !FileManager.default.fileExists(atPath: directory + "/set-it4.safetensors"))
    }
}
