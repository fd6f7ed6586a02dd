import ArgumentParser
import Distill
import Foundation
import Testing
@testable import feddistill

@Suite("Command line")
struct CommandLineTests {
    @Test func everySubcommandHasHelp() throws {
        for path in [[], ["datasets"], ["datasets", "fetch"], ["datasets", "info"], ["train"], ["bench"], ["gate-rates"]] {
            let text = FedDistillCommand.helpMessage(for: try #require(subcommand(path)))
            #expect(text.contains("USAGE"), "help for \(path)")
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
        for arguments in [["train", "--bogus"], ["datasets", "info"], ["bench", "--batch", "zero"], ["nonsense"],
                          ["train", "--subset", "all:3"], ["train", "--threads", "0"], ["train", "--norm", "weird"],
                          distill + ["--dp-epsilon", "1", "--init", "real"], distill + ["--dp-epsilon", "1", "--method", "dc"],
                          distill + ["--dp-epsilon=0"], distill + ["--dp-epsilon", "1", "--dp-delta", "2"],
                          distill + ["--dp-epsilon", "1", "--norm", "batch"], distill + ["--snapshot-every", "0"],
                          distill + ["--snapshot-every", "5", "--method", "random"], ["simulate", "--dp-epsilon=-2"],
                          ["status", "--coordinator", "h:1", "--name", "n", "--service", "feddistill.round"],
                          ["gate-rates", "--kinds", "control,bogus"], ["gate-rates", "--alpha", "0"], ["gate-rates", "--records-per-class", "4"],
                          ["gate-rates", "--recipe-json", "r.json", "--bank", "3"], ["gate-rates", "--dp-epsilon", "-1"]] {
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
