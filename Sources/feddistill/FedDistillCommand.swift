import ArgumentParser
import Distill
import Foundation
import Logging

@main
struct FedDistillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feddistill",
        abstract: "Federated, privacy-preserving dataset distillation.",
        discussion: """
            Nodes distill their private data into a few synthetic images per class and send only sealed \
            synthetic sets; the coordinator merges them by distribution matching and evaluates a global model.
            """,
        version: FedDistillVersion.string,
        subcommands: [DatasetsCommand.self, TrainCommand.self, DistillCommand.self, EvaluateCommand.self, ExportCommand.self, AuditCommand.self,
                      CoordinatorCommand.self, NodeCommand.self, SimulateCommand.self, StatusCommand.self, RoundCommand.self,
                      CertsCommand.self, KeysCommand.self, BenchCommand.self, GateRatesCommand.self, NASCommand.self, PreviewCommand.self, ContinualCommand.self])

    static func main() async {
        Parallel.keepLargeBlocksInHeap()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = LogLevelOption.current
            return handler
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

enum FedDistillVersion {
    static let string = "0.1.0"
}

/// The log level, from `FEDDISTILL_LOG_LEVEL` (trace, debug, info, notice, warning, error, critical).
enum LogLevelOption {
    static var current: Logger.Level {
        guard let text = ProcessInfo.processInfo.environment["FEDDISTILL_LOG_LEVEL"],
              let level = Logger.Level(rawValue: text.lowercased()) else { return .info }
        return level
    }
}
