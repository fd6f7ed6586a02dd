import ArgumentParser
import Distill

/// `--threads`, shared by every command that computes.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Worker threads for the numerics (default: $FEDDISTILL_THREADS, else all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func apply() {
        if let threads { Parallel.setThreads(threads) }
    }
}

/// Model architecture flags shared by train, distill and evaluate.
struct ModelOptions: ParsableArguments {
    @Option(help: "ConvNet width (channels per conv).") var width = 128
    @Option(help: "ConvNet depth (conv blocks).") var depth = 3
    @Option(help: "Normalisation: instance, batch, layer, group:G, none.") var norm = "instance"
    @Option(help: "Activation: relu, leakyrelu, sigmoid.") var activation = "relu"
    @Option(help: "Pooling: avg, max, none.") var pooling = "avg"

    func validate() throws {
        guard width > 0, depth > 0 else { throw ValidationError("--width and --depth must be positive") }
        guard NormKind(norm) != nil else { throw ValidationError("unknown --norm '\(norm)'") }
        guard Activation(rawValue: activation) != nil else { throw ValidationError("unknown --activation '\(activation)'") }
        guard Pooling(pooling) != nil else { throw ValidationError("unknown --pooling '\(pooling)'") }
    }

    /// The flags as a recipe's network.
    var recipeNetwork: DistillationRecipe.Network {
        DistillationRecipe.Network(width: width, depth: depth, norm: NormKind(norm) ?? .instance,
                                   activation: Activation(rawValue: activation) ?? .relu, pooling: Pooling(pooling) ?? .avg)
    }

    func configuration(imageShape: [Int], classCount: Int) -> ConvNet.Configuration {
        ConvNet.Configuration(imageShape: imageShape, classCount: classCount, depth: depth, width: width,
                              norm: NormKind(norm) ?? .instance, activation: Activation(rawValue: activation) ?? .relu,
                              pooling: Pooling(pooling) ?? .avg)
    }
}
