import ArgumentParser
import Distill
import Foundation
import Testing
import Coordinator
@testable import feddistill

/// `distill` records its flags as the set's recipe, and `audit` reruns that recipe for its shadows.
@Suite("Recipe on the command line")
struct RecipeCommandTests {
    func temporaryDirectory() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("feddistill-recipe-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    func distill(_ arguments: [String], out: String) throws -> SyntheticSet {
        let command = try #require(try FedDistillCommand.parseAsRoot(["distill"] + arguments + ["--out", out]) as? DistillCommand)
        try command.run()
        return try SyntheticSet.read(out)
    }

    @Test func distillWritesTheRecipeOfItsFlags() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let set = try distill(["--method", "dm", "--width", "64", "--lr-img", "5", "--iterations", "20", "--ipc", "1", "--seed", "7",
                               "--bank", "0", "--json", directory + "/report.json"], out: directory + "/s.safetensors")
        let recipe = try #require(set.metadata.recipe)
        #expect(recipe == DistillationRecipe(method: .dm, initialization: .noise, imagesPerClass: 1, iterations: 20,
                                             network: .init(width: 64), imageLearningRate: 5, batchReal: 256,
                                             augmentation: .dsa, seed: 7))
        // The JSON report carries the same recipe.
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/report.json")))
                                  as? [String: Any])
        let reported = try JSONSerialization.data(withJSONObject: try #require(report["recipe"]))
        #expect(try JSONDecoder().decode(DistillationRecipe.self, from: reported) == recipe)
        // The existing keys keep their values.
        #expect(set.metadata.method == "dm" && set.metadata.imagesPerClass == 1 && set.metadata.iterations == 20
                && set.metadata.initialization == "noise" && set.metadata.seed == 7)
    }

    /// `distill` with no flags but the output is the nodes' default: DM from noise with the recommended statistics bank
    /// and 3000 iterations. `--bank 0` is plain DM with its 1000 iterations; DP-DM keeps the bank with random networks
    /// only (trained networks are refused), and `--bank 0` makes it plain DP-DM.
    @Test func distillDefaultsToTheRecommendedBank() throws {
        func recipe(_ arguments: [String]) throws -> DistillationRecipe {
            try #require(try FedDistillCommand.parseAsRoot(["distill", "--out", "x.safetensors"] + arguments) as? DistillCommand).recipe
        }
        var expected = DistillationRecipe.reference(.dm)
        #expect(try recipe([]) == expected)
        #expect(try recipe([]).settings == .distributionMatching(.recommended) && expected.iterations == 3000)
        expected.settings = .distributionMatching(.init(bankSize: 20, trainedNetworks: 2, trainingSteps: 50, classLossWeight: 0.5))
        #expect(try recipe(["--bank", "20", "--trained-networks", "2", "--training-steps", "50", "--class-loss", "0.5"]) == expected)
        let plain = try recipe(["--bank", "0"])
        #expect(plain.settings == .standard && plain.iterations == 1000 && plain == DistillationRecipe())
        let dp = try recipe(["--dp-epsilon", "4"])
        #expect(dp.settings == .distributionMatching(.recommendedPrivate) && dp.privacy?.epsilon == 4 && dp.iterations == 3000)
        #expect(DistillationRecipe.DistributionMatchingSettings.recommendedPrivate == .recommended.privatised)
        #expect(try recipe(["--dp-epsilon", "4", "--bank", "10"]).settings == .distributionMatching(.init(bankSize: 10)))
        let plainDP = try recipe(["--dp-epsilon", "4", "--bank", "0"])
        #expect(plainDP.settings == .standard && plainDP.privacy?.epsilon == 4 && plainDP.iterations == 1000)
        #expect(try recipe(["--method", "dsa"]).settings == .standard)
        expected.settings = .distributionMatching(.init(bankSize: 100, trainedNetworks: 4, trainingSteps: 200, classLossWeight: 1,
                                                        formationFactor: 2))
        expected.iterations = 3000
        #expect(try recipe(["--formation", "2"]) == expected)
        let plainFormed = try recipe(["--bank", "0", "--formation", "2"])
        #expect(plainFormed.settings == .distributionMatching(.init(formationFactor: 2)) && plainFormed.iterations == 1000)
        // Bank settings without a bank, and dm settings on other methods, are refused rather than ignored.
        for arguments in [["--dp-epsilon", "4", "--class-loss", "1"], ["--bank", "-1"], ["--bank", "4", "--trained-networks", "5"],
                          ["--class-loss", "-1"], ["--bank", "0", "--class-loss", "1"], ["--bank", "0", "--training-steps", "10"],
                          ["--dp-epsilon", "4", "--trained-networks", "2"], ["--method", "dsa", "--bank", "10"],
                          ["--method", "random", "--formation", "2"], ["--formation", "5"], ["--formation", "0"]] {
            #expect(throws: (any Error).self, "\(arguments)") {
                _ = try FedDistillCommand.parseAsRoot(["distill", "--out", "x.safetensors"] + arguments)
            }
        }
    }

    @Test func baselinesRecordRealInitialisationAndNoAugmentation() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let set = try distill(["--method", "random", "--ipc", "2", "--iterations", "3"], out: directory + "/r.safetensors")
        let recipe = try #require(set.metadata.recipe)
        #expect(recipe.method == .random && recipe.initialization == .real && recipe.augmentation == DistillationRecipe.Augmentation.none)
        #expect(set.metadata.iterations == 0 && set.metadata.initialization == "real" && set.data.count == 20)
    }

    @Test func distillRefusesRecipeValuesOutOfRange() {
        for arguments in [["--lr-img", "0"], ["--ipc", "1001"], ["--width", "2000"], ["--depth", "9"], ["--norm", "group:3"]] {
            #expect(throws: (any Error).self, "\(arguments)") {
                _ = try FedDistillCommand.parseAsRoot(["distill", "--out", "x.safetensors"] + arguments)
            }
        }
    }

    /// Shadows follow the set's own recipe (width 64 here) unless a flag says otherwise; sets without a recipe keep
    /// the old DM defaults.
    @Test func auditShadowsUseTheSetsRecipe() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/s.safetensors"
        let set = try distill(["--method", "dm", "--width", "64", "--lr-img", "5", "--iterations", "2", "--ipc", "1", "--bank", "0"], out: path)
        let audit = ["audit", "--set", path, "--members", "digits:train:0-60", "--nonmembers", "digits:test:0-60",
                     "--attacks", "lira", "--shadows", "2", "--shadow-iterations", "1", "--epochs", "1", "--resamples", "10"]
        let command = try #require(try FedDistillCommand.parseAsRoot(audit) as? AuditCommand)
        var expected = try #require(set.metadata.recipe)
        expected.iterations = 1
        #expect(command.shadowRecipe(for: set.metadata) == expected)
        #expect(command.shadowRecipe(for: set.metadata).network.width == 64)
        do {
            try command.run()
        } catch let exit as ExitCode where exit.rawValue == 3 {
            // An attack beating chance on so tiny an audit is possible; the run itself completed.
        }
        let overridden = try #require(try FedDistillCommand.parseAsRoot(audit + ["--width", "16", "--pooling", "max"]) as? AuditCommand)
        let network = overridden.shadowRecipe(for: set.metadata).network
        #expect(network.width == 16 && network.pooling == .max && network.depth == 3)
        var old = set.metadata
        old.recipe = nil
        #expect(command.shadowRecipe(for: old) == DistillationRecipe(imagesPerClass: 1, iterations: 1))
    }

    /// `--no-baseline` leaves out the model trained on the members; by default the report has it.
    @Test func auditBaselineCanBeSkipped() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/s.safetensors"
        _ = try distill(["--method", "random", "--ipc", "1"], out: path)
        func baseline(_ extra: [String]) throws -> [String: Any] {
            let command = try #require(try FedDistillCommand.parseAsRoot(["audit", "--set", path, "--members", "digits:train:0-40",
                "--nonmembers", "digits:train:40-80", "--attacks", "loss", "--epochs", "1", "--resamples", "10",
                "--json", directory + "/a.json"] + extra) as? AuditCommand)
            do { try command.run() } catch let exit as ExitCode where exit.rawValue == 3 {}
            let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/a.json")))
                                      as? [String: Any])
            return try #require(report["baseline"] as? [String: Any])
        }
        #expect(try baseline([])["loss"] != nil)
        #expect(try baseline(["--no-baseline"]).isEmpty)
    }

    /// The coordinator refuses to start a round whose node recipe is unknown or invalid.
    @Test func coordinatorSettingsCheckTheNodesRecipe() throws {
        func settings(_ values: [String: String]) throws -> CoordinatorConfiguration {
            let environment = Dictionary(uniqueKeysWithValues: values.map { ("FEDDISTILL_COORDINATOR_" + $0.key.uppercased(), $0.value) })
            return try CoordinatorConfiguration(flags: ["nodes": "a"], configFile: nil, environment: environment)
        }
        #expect(try settings(["method": "dc", "width": "16"]).nodeRecipe?.method == .dc)
        let formed = try #require(try settings(["dataset": "mnist", "formation_factor": "2"]).nodeRecipe)
        #expect(formed.formationFactor == 2 && formed.settings == .distributionMatching(.init(
            bankSize: 100, trainedNetworks: 4, trainingSteps: 200, classLossWeight: 1, formationFactor: 2)))
        for bad in [["method": "bogus"], ["width": "5000"], ["ipc": "1001"], ["formation_factor": "3"], ["formation_factor": "5"],
                    ["method": "dc", "formation_factor": "2"]] {
            #expect(throws: CommandFailure.self, "\(bad)") { try settings(bad) }
        }
    }

    /// End to end through the binary: the shadow recipe it announces has the set's width.
    @Test func auditAnnouncesItsShadowRecipe() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/s.safetensors"
        _ = try distill(["--width", "64", "--iterations", "1", "--ipc", "1"], out: path)
        let child = try ChildProcess("audit", ["audit", "--set", path, "--members", "digits:train:0-40", "--nonmembers",
                                               "digits:test:0-40", "--attacks", "dcr", "--epochs", "1", "--resamples", "10"])
        let status = await child.waitForExit()
        #expect(status == 0 || status == 3, "\(child.output)")
        #expect(child.output.contains("shadow recipe (the set's own)") && child.output.contains("\"width\":64"), "\(child.output)")
    }

    /// A multi-formation set is audited on its decoded training images and, with the distance attacks, on the stored
    /// images that are shared.
    @Test func auditCoversAFormationSetsStoredImages() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/f.safetensors"
        let set = try distill(["--width", "16", "--iterations", "2", "--ipc", "1", "--formation", "2", "--bank", "0"], out: path)
        #expect(set.metadata.formationFactor == 2 && set.trainingData.count == 40)
        let child = try ChildProcess("audit", ["audit", "--set", path, "--members", "digits:train:0-40", "--nonmembers",
                                               "digits:test:0-40", "--attacks", "dcr,loss", "--epochs", "1", "--resamples", "10",
                                               "--json", directory + "/a.json"])
        let status = await child.waitForExit()
        #expect(status == 0 || status == 3, "\(child.output)")
        #expect(child.output.contains("stored images (what is shared"), "\(child.output)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/a.json"))) as? [String: Any])
        let stored = try #require(report["stored_images"] as? [String: Any])
        #expect((stored["attacks"] as? [String: Any])?.keys.sorted() == ["dcr"])
        #expect((report["attacks"] as? [String: Any])?.keys.sorted() == ["dcr", "loss"])
    }
}
