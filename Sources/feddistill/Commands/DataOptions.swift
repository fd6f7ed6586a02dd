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
    /// The records FIRST..<LAST, written "FIRST-LAST", or FIRST..<LAST of the split shuffled with a seed, written
    /// "FIRST-LAST@SEED" (the same seed gives the same order in every command, so two ranges of one shuffled order are
    /// an exchangeable member/non-member split; consecutive ranges of MNIST's stored order are not). `what` names
    /// the setting in the error.
    func records(inRange text: String, what: String) throws -> LabeledImages {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        let bounds = parts[0].split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count <= 2, bounds.count == 2, let first = bounds[0], let last = bounds[1], first >= 0, first < last, last <= count else {
            throw CommandFailure("\(what) must be FIRST-LAST or FIRST-LAST@SEED within 0...\(count)")
        }
        guard parts.count == 2 else { return subset(Array(first..<last)) }
        guard let seed = UInt64(parts[1]) else {
            throw CommandFailure("\(what): the shuffle seed after '@' must be a non-negative integer, got '\(parts[1])'")
        }
        var rng = RandomSource(seed: seed ^ 0x5EED_9001)
        return subset(Array(rng.permutation(count)[first..<last]))
    }
}
