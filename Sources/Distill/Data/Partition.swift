/// How a training set is split across federated nodes. Every scheme is deterministic given its seed, and every
/// sample lands in exactly one partition.
public enum PartitionScheme: Sendable, Equatable, CustomStringConvertible {
    /// Uniformly random, equal-sized (±1) partitions.
    case iid
    /// Label skew: for each class, the proportions across nodes are drawn from Dirichlet(α, …, α).
    /// Small α gives each node few classes; α → ∞ approaches IID.
    case dirichlet(alpha: Double)
    /// Sort by label, cut into `shardsPerNode × nodes` equal shards, and deal `shardsPerNode` random shards to each
    /// node (the FedAvg paper's pathological non-IID split).
    case shards(perNode: Int)

    /// Parses `iid`, `dirichlet:ALPHA` or `shards:K`.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        switch parts.first {
        case "iid" where parts.count == 1: self = .iid
        case "dirichlet" where parts.count == 2:
            guard let alpha = Double(parts[1]), alpha > 0, alpha.isFinite else { return nil }
            self = .dirichlet(alpha: alpha)
        case "shards" where parts.count == 2:
            guard let k = Int(parts[1]), k > 0 else { return nil }
            self = .shards(perNode: k)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .iid: "iid"
        case let .dirichlet(alpha): "dirichlet:\(alpha)"
        case let .shards(k): "shards:\(k)"
        }
    }
}

/// Splits sample indices across nodes.
public enum Partitioner {
    /// Returns, for each of `nodes` nodes, the sorted indices into `labels` it receives.
    public static func partition(labels: [Int], classCount: Int, nodes: Int, scheme: PartitionScheme,
                                 seed: UInt64) -> [[Int]] {
        precondition(nodes > 0, "need at least one node")
        var rng = RandomSource(seed: seed)
        var parts = [[Int]](repeating: [], count: nodes)
        switch scheme {
        case .iid:
            for (position, index) in rng.permutation(labels.count).enumerated() { parts[position % nodes].append(index) }
        case let .dirichlet(alpha):
            var byClass = [[Int]](repeating: [], count: classCount)
            for (i, label) in labels.enumerated() { byClass[label].append(i) }
            for members in byClass where !members.isEmpty {
                let shuffled = rng.permutation(members.count).map { members[$0] }
                var weights = (0..<nodes).map { _ in rng.gamma(shape: alpha) }
                let total = weights.reduce(0, +)
                weights = total > 0 ? weights.map { $0 / total } : [Double](repeating: 1 / Double(nodes), count: nodes)
                // Cumulative cut points; the last node takes the remainder so every sample is assigned.
                var start = 0
                var cumulative = 0.0
                for node in 0..<nodes {
                    cumulative += weights[node]
                    let end = node == nodes - 1 ? shuffled.count : min(shuffled.count, Int((cumulative * Double(shuffled.count)).rounded()))
                    if end > start { parts[node] += shuffled[start..<end] }
                    start = max(start, end)
                }
            }
        case let .shards(perNode):
            let order = labels.indices.sorted { (labels[$0], $0) < (labels[$1], $1) }
            let shardCount = perNode * nodes
            let shardOrder = rng.permutation(shardCount)
            for (position, shard) in shardOrder.enumerated() {
                let lower = shard * order.count / shardCount, upper = (shard + 1) * order.count / shardCount
                parts[position % nodes] += order[lower..<upper]
            }
        }
        return parts.map { $0.sorted() }
    }
}
