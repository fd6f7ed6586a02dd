import ArgumentParser
import Testing
@testable import feddistill

@Suite("Command line")
struct CommandLineTests {
    @Test func everySubcommandHasHelp() throws {
        for path in [[], ["datasets"], ["datasets", "fetch"], ["datasets", "info"], ["train"], ["bench"]] {
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
        for arguments in [["train", "--bogus"], ["datasets", "info"], ["bench", "--batch", "zero"], ["nonsense"],
                          ["train", "--subset", "all:3"], ["train", "--threads", "0"], ["train", "--norm", "weird"]] {
            #expect(throws: (any Error).self, "\(arguments)") { _ = try FedDistillCommand.parseAsRoot(arguments) }
            do {
                _ = try FedDistillCommand.parseAsRoot(arguments)
            } catch {
                #expect(FedDistillCommand.exitCode(for: error) != .success, "\(arguments)")
            }
        }
    }

    @Test func trainParsesItsOptions() throws {
        let command = try #require(try FedDistillCommand.parseAsRoot(
            ["train", "--dataset", "mnist", "--subset", "random:10", "--epochs", "3", "--width", "64", "--seed", "4", "--json", "r.json"])
            as? TrainCommand)
        #expect(command.dataset == "mnist" && command.epochs == 3 && command.model.width == 64 && command.seed == 4)
        #expect(TrainCommand.parseSubset("random:10") == 10)
    }
}
