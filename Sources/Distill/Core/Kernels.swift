/// Vectorised reductions over contiguous `Float` buffers. Swift keeps floating-point additions in order, so a plain
/// `for` loop sum is one dependent add per element; these keep eight independent SIMD8 lanes instead.
enum Kernels {
    /// Σ p[i].
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
        var acc = SIMD8<Float>(), i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= count {
            acc += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var total = acc.sum()
        while i < count { total += p[i]; i += 1 }
        return total
    }

    /// Σ (p[i] − mean)².
    @inline(__always)
    static func squaredDeviation(_ p: UnsafePointer<Float>, _ count: Int, mean: Float) -> Float {
        var acc = SIMD8<Float>(), i = 0
        let raw = UnsafeRawPointer(p), m = SIMD8<Float>(repeating: mean)
        while i + 8 <= count {
            let d = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - m
            acc += d * d
            i += 8
        }
        var total = acc.sum()
        while i < count { let d = p[i] - mean; total += d * d; i += 1 }
        return total
    }

    /// (Σ g[i], Σ g[i]·(x[i] − mean)) in one pass.
    @inline(__always)
    static func sumAndCentredDot(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int,
                                 mean: Float) -> (Float, Float) {
        var a = SIMD8<Float>(), b = SIMD8<Float>(), i = 0
        let rg = UnsafeRawPointer(g), rx = UnsafeRawPointer(x), m = SIMD8<Float>(repeating: mean)
        while i + 8 <= count {
            let gv = rg.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            a += gv
            b += gv * (rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - m)
            i += 8
        }
        var sa = a.sum(), sb = b.sum()
        while i < count { sa += g[i]; sb += g[i] * (x[i] - mean); i += 1 }
        return (sa, sb)
    }
}
