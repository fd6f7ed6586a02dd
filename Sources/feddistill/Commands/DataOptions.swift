import ArgumentParser
import Distill

/// `--data-dir`, shared by every command that reads data.
struct DataOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"),
            help: "Dataset directory (default: $FEDDISTILL_DATA, else $XDG_DATA_HOME/feddistill, else ~/.local/share/feddistill).")
    var dataDirectory: String?

    var store: DatasetStore { DatasetStore.resolve(explicit: dataDirectory) }
}

/// Turns library errors into a clear message and a non-zero exit.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
    init(_ error: any Error) { description = String(describing: error) }
}

extension LabeledImages {
    /// The records FIRST..<LAST, written "FIRST-LAST"; `what` names the setting in the error.
    func records(inRange text: String, what: String) throws -> LabeledImages {
        let bounds = text.split(separator: "-").compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] >= 0, bounds[0] < bounds[1], bounds[1] <= count else {
            throw CommandFailure("\(what) must be FIRST-LAST within 0...\(count)")
        }
        return subset(Array(bounds[0]..<bounds[1]))
    }
}
