/// A seeded, platform-independent pseudo-random generator (xoshiro256**, seeded through SplitMix64).
///
/// The same seed produces the same sequence on every platform and thread count, so a seed reproduces a run.
/// Normal variates use the Box–Muller transform in `Double`.
public struct RandomSource: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt64
    private var spareNormal: Double?

    /// Creates a generator from a 64-bit seed.
    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    /// An independent generator derived from this one's seed and a stream label (for parallel or per-node work).
    public func derived(_ stream: UInt64) -> RandomSource {
        var copy = self
        let a = copy.next(), b = copy.next()
        return RandomSource(seed: a ^ (b &* 0x2545_F491_4F6C_DD1D) ^ (stream &* 0x9E37_79B9_7F4A_7C15))
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// A uniform `Double` in `[0, 1)` with 53 random bits.
    public mutating func unitDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A uniform `Float` in `[low, high)`.
    public mutating func uniform(_ low: Float = 0, _ high: Float = 1) -> Float {
        low + (high - low) * Float(unitDouble())
    }

    /// A standard normal variate.
    public mutating func normal() -> Float {
        if let spare = spareNormal {
            spareNormal = nil
            return Float(spare)
        }
        var u = unitDouble()
        while u <= .leastNormalMagnitude { u = unitDouble() }
        let v = unitDouble()
        let radius = (-2 * _log(u)).squareRoot()
        spareNormal = radius * _sin(2 * .pi * v)
        return Float(radius * _cos(2 * .pi * v))
    }

    /// A uniform integer in `0..<bound` without modulo bias.
    public mutating func integer(below bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let b = UInt64(bound)
        let threshold = (0 &- b) % b
        while true {
            let r = next()
            if r >= threshold { return Int(r % b) }
        }
    }

    /// A random permutation of `0..<n` (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, integer(below: i + 1)) }
        }
        return p
    }

    /// `k` distinct elements of `elements`, in random order.
    public mutating func choose<T>(_ k: Int, from elements: [T]) -> [T] {
        precondition(k <= elements.count, "cannot choose \(k) of \(elements.count)")
        return permutation(elements.count).prefix(k).map { elements[$0] }
    }

    /// A Gamma(shape, 1) variate (Marsaglia–Tsang), used for Dirichlet partitions.
    public mutating func gamma(shape: Double) -> Double {
        if shape < 1 {
            let u = max(unitDouble(), .leastNormalMagnitude)
            return gamma(shape: shape + 1) * _pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat {
                x = Double(normal())
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = unitDouble()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if _log(max(u, .leastNormalMagnitude)) < 0.5 * x * x + d * (1 - v + _log(v)) { return d * v }
        }
    }
}
