/// A dense, contiguous, row-major tensor of `Float`. Images are NCHW.
///
/// `Tensor` is a value type: copies share storage until one of them is written (copy-on-write via `Array`).
public struct Tensor: Sendable, Equatable {
    /// The extent of each dimension, outermost first.
    public private(set) var shape: [Int]
    /// The elements in row-major order; `storage.count == shape.reduce(1, *)`.
    public var storage: [Float]

    /// Creates a tensor from a shape and its row-major elements.
    /// - Precondition: `storage.count` equals the product of `shape`.
    public init(shape: [Int], storage: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(storage.count == shape.reduce(1, *), "storage of \(storage.count) elements does not fit \(shape)")
        self.shape = shape
        self.storage = storage
    }

    /// A tensor of the given shape filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        self.init(shape: shape, storage: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// A tensor whose elements are not initialised: for outputs that a kernel overwrites completely.
    init(uninitializedShape shape: [Int]) {
        let count = shape.reduce(1, *)
        self.shape = shape
        storage = [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape) }

    /// Elements drawn uniformly from `[low, high)`.
    public static func uniform(_ shape: [Int], low: Float = -1, high: Float = 1, using rng: inout RandomSource) -> Tensor {
        var t = Tensor(shape: shape)
        for i in t.storage.indices { t.storage[i] = rng.uniform(low, high) }
        return t
    }

    /// Elements drawn from a normal distribution.
    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, using rng: inout RandomSource) -> Tensor {
        var t = Tensor(shape: shape)
        for i in t.storage.indices { t.storage[i] = mean + std * rng.normal() }
        return t
    }

    /// The number of elements.
    @inlinable public var count: Int { storage.count }

    /// The same elements viewed with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, storage: storage) }

    /// Rows `range` of the outermost dimension (for example a slice of a batch).
    public func slice(_ range: Range<Int>) -> Tensor {
        let inner = shape.dropFirst().reduce(1, *)
        return Tensor(shape: [range.count] + shape.dropFirst(),
                      storage: Array(storage[(range.lowerBound * inner)..<(range.upperBound * inner)]))
    }

    /// The rows `indices` of the outermost dimension, in that order.
    public func gather(_ indices: [Int]) -> Tensor {
        let inner = shape.dropFirst().reduce(1, *)
        var out = [Float](repeating: 0, count: indices.count * inner)
        storage.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (row, index) in indices.enumerated() {
                    precondition(index >= 0 && index < shape[0], "row \(index) out of range 0..<\(shape[0])")
                    for j in 0..<inner { dst[row * inner + j] = src[index * inner + j] }
                }
            }
        }
        return Tensor(shape: [indices.count] + shape.dropFirst(), storage: out)
    }

    /// Writes the rows of `rows` (in order) into rows `indices` of the outermost dimension: the inverse of `gather`.
    public mutating func setRows(_ indices: [Int], from rows: Tensor) {
        let inner = shape.dropFirst().reduce(1, *)
        precondition(rows.shape[0] == indices.count && rows.count == indices.count * inner, "rows \(rows.shape) do not fit \(shape)")
        storage.withUnsafeMutableBufferPointer { dst in
            rows.storage.withUnsafeBufferPointer { src in
                for (row, index) in indices.enumerated() {
                    precondition(index >= 0 && index < shape[0], "row \(index) out of range 0..<\(shape[0])")
                    for j in 0..<inner { dst[index * inner + j] = src[row * inner + j] }
                }
            }
        }
    }

    /// Stacks tensors of equal trailing shape along the outermost dimension.
    public static func concatenate(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty, "concatenate needs at least one tensor")
        let trailing = Array(parts[0].shape.dropFirst())
        var storage: [Float] = []
        storage.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        var rows = 0
        for part in parts {
            precondition(Array(part.shape.dropFirst()) == trailing, "shape \(part.shape) does not stack on \(trailing)")
            storage += part.storage
            rows += part.shape[0]
        }
        return Tensor(shape: [rows] + trailing, storage: storage)
    }

    /// True when every element is finite (no NaN or infinity).
    public var isFinite: Bool { storage.allSatisfy { $0.isFinite } }

    /// The sum of all elements, accumulated in `Double`.
    public func sum() -> Double { storage.reduce(0) { $0 + Double($1) } }

    /// The squared L2 norm, accumulated in `Double`.
    public func squaredNorm() -> Double { storage.reduce(0) { $0 + Double($1) * Double($1) } }

    /// Mean over the outermost dimension: `(N, rest…) → (rest…)`.
    public func meanOverBatch() -> Tensor {
        let n = shape[0]
        let inner = count / max(n, 1)
        var out = [Float](repeating: 0, count: inner)
        for b in 0..<n { for j in 0..<inner { out[j] += storage[b * inner + j] } }
        let scale = 1 / Float(max(n, 1))
        for j in 0..<inner { out[j] *= scale }
        return Tensor(shape: Array(shape.dropFirst()), storage: out)
    }

    /// Elementwise `self += scale * other`.
    public mutating func add(_ other: Tensor, scaledBy scale: Float = 1) {
        precondition(other.count == count, "cannot add \(other.shape) to \(shape)")
        storage.withUnsafeMutableBufferPointer { a in
            other.storage.withUnsafeBufferPointer { b in
                for i in 0..<a.count { a[i] += scale * b[i] }
            }
        }
    }

    /// Elementwise `self *= scale`.
    public mutating func scale(by scale: Float) {
        storage.withUnsafeMutableBufferPointer { a in for i in 0..<a.count { a[i] *= scale } }
    }
}

extension Tensor: CustomStringConvertible {
    /// Shape only: tensors may hold private data and are never printed element by element.
    public var description: String { "Tensor\(shape)" }
}
