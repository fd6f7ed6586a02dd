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
