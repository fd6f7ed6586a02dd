import Foundation

/// A differential-privacy budget for a distillation: (ε, δ) and the bound on each record's embedding deviation.
///
/// With a budget, distribution matching becomes DP-DM: each class's real batch is drawn by Poisson sampling, every
/// record's embedding is taken relative to a public reference (the class's current synthetic mean embedding) and that
/// deviation is clipped to `clipNorm`, and Gaussian noise of standard deviation `σ·clipNorm` is added to the per-class
/// sum before it is divided by the expected batch size. A record only ever enters its own class's sum, so one iteration
/// is one sampled Gaussian mechanism over the whole data set, and ``GaussianAccountant`` composes them. Centring
/// matters: embeddings of a random ConvNet share a large common component (norm ≈ 0.5·√features) while records differ
/// from their class mean by 0.03–0.2·√features, so clipping the deviation needs 3–16× less noise than clipping the
/// embedding itself.
public struct PrivacyBudget: Sendable, Codable, Equatable {
    public var epsilon: Double
    public var delta: Double
    /// The per-record L2 bound on an embedding's deviation from the reference (the class's synthetic mean). `nil`:
    /// ``defaultClipNorm(featureShape:)``.
    public var clipNorm: Float?

    public init(epsilon: Double, delta: Double = 1e-5, clipNorm: Float? = nil) {
        self.epsilon = epsilon
        self.delta = delta
        self.clipNorm = clipNorm
    }

    /// What a record's embedding deviation is taken from.
    public enum Reference: Sendable {
        /// The class's current synthetic mean embedding (plain DP-DM: a function of earlier releases).
        case syntheticMean
        /// The mean embedding of public noise images under the same network and draw (a private statistics bank, built
        /// before any release). Real embeddings lie about twice as far from it as from their class mean.
        case noiseMean
    }

    /// The clip norm used when none is given, for a network whose last block outputs `featureShape` ([C, H, W]),
    /// set from fresh ConvNets (instance norm, ReLU, average pooling; widths 32–128) measured on public data
    /// (docs/privacy.md). From the class's synthetic mean: about the median distance of a record's embedding from its
    /// class mean, 0.024–0.027·√features for 8×8 digits (1×1 final maps) and 0.18·√features for MNIST (4×4 final
    /// maps), so 0.03 and 0.2·√features. From the noise mean: about the 90th percentile of a record's distance from
    /// it, 0.034–0.035·√features and 0.40–0.42·√features, so 0.035 and 0.4·√features. The bound depends on the
    /// architecture only, never on the private data; `--dp-clip` overrides it for other data.
    public static func defaultClipNorm(featureShape: [Int], reference: Reference = .syntheticMean) -> Float {
        let features = Float(featureShape.reduce(1, *))
        let pointwise = featureShape.count == 3 && featureShape[1] * featureShape[2] == 1
        let scale: Float = switch reference {
        case .syntheticMean: pointwise ? 0.03 : 0.2
        case .noiseMean: pointwise ? 0.035 : 0.4
        }
        return scale * features.squareRoot()
    }

    /// The clip norm for a network whose last block outputs `featureShape`, for deviations from `reference`.
    public func clipNorm(featureShape: [Int], reference: Reference = .syntheticMean) -> Float {
        clipNorm ?? Self.defaultClipNorm(featureShape: featureShape, reference: reference)
    }

    enum CodingKeys: String, CodingKey { case epsilon, delta, clipNorm = "clip_norm" }

    /// Why this budget cannot be used, or nil.
    public var problem: String? {
        if !(epsilon.isFinite && epsilon > 0) { return "the privacy budget epsilon must be a positive number (got \(epsilon))" }
        if !(delta > 0 && delta < 1) { return "the privacy budget delta must lie strictly between 0 and 1 (got \(delta))" }
        if let clipNorm, !(clipNorm.isFinite && clipNorm > 0) { return "the clip norm must be a positive number (got \(clipNorm))" }
        return nil
    }
}

/// The noise a DP distillation runs with, derived from a ``PrivacyBudget`` and the data's class sizes.
public struct PrivacyCalibration: Sendable, Codable, Equatable {
    /// Poisson sampling rate of the largest-rate class (`min(1, batchReal / smallest class size)`).
    public var sampleRate: Double
    /// σ: the noise standard deviation in units of the clip norm.
    public var noiseMultiplier: Double
    public var steps: Int
    public var clipNorm: Float
    /// The ε the accountant reports for these settings (≤ the budget's ε).
    public var epsilon: Double
    public var delta: Double

    /// A calibration whose ε is what ``GaussianAccountant`` reports for these settings.
    public init(sampleRate: Double, noiseMultiplier: Double, steps: Int, clipNorm: Float, delta: Double) {
        self.sampleRate = sampleRate
        self.noiseMultiplier = noiseMultiplier
        self.steps = steps
        self.clipNorm = clipNorm
        self.delta = delta
        epsilon = GaussianAccountant.epsilon(sampleRate: sampleRate, noiseMultiplier: noiseMultiplier, steps: steps, delta: delta)
    }

    /// The guarantee of the same run stopped after `steps` iterations (a snapshot): same noise, fewer releases.
    public func after(steps: Int) -> PrivacyCalibration {
        PrivacyCalibration(sampleRate: sampleRate, noiseMultiplier: noiseMultiplier, steps: steps, clipNorm: clipNorm, delta: delta)
    }

    /// The calibration as a JSON object (the `differential_privacy` entry of reports).
    public var jsonObject: [String: Any] {
        ["epsilon": epsilon, "delta": delta, "noise_multiplier": noiseMultiplier, "sample_rate": sampleRate,
         "clip_norm": Double(clipNorm), "steps": steps]
    }

    enum CodingKeys: String, CodingKey {
        case sampleRate = "sample_rate", noiseMultiplier = "noise_multiplier", steps, clipNorm = "clip_norm", epsilon, delta
    }
}

/// Rényi-DP accounting of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar & Zhang 2019), composed over
/// steps and converted to (ε, δ) with the conversion of Balle et al. (2020), over integer orders 2…256.
public enum GaussianAccountant {
    public static let orders = Array(2...256)

    /// The RDP of one step at integer order `alpha`: `log(A_α) / (α − 1)` with
    /// `A_α = Σ_k C(α,k) (1−q)^(α−k) q^k exp((k² − k) / 2σ²)`.
    public static func rdp(sampleRate q: Double, noiseMultiplier sigma: Double, order alpha: Int) -> Double {
        precondition(alpha >= 2 && q >= 0 && q <= 1 && sigma > 0)
        if q == 0 { return 0 }
        let a = Double(alpha)
        if q == 1 { return a / (2 * sigma * sigma) }
        var terms: [Double] = []
        terms.reserveCapacity(alpha + 1)
        for k in 0...alpha {
            let kd = Double(k)
            let logBinomial = lgamma(a + 1) - lgamma(kd + 1) - lgamma(a - kd + 1)
            terms.append(logBinomial + (a - kd) * log1p(-q) + kd * log(q) + (kd * kd - kd) / (2 * sigma * sigma))
        }
        let top = terms.max()!
        let logA = top + log(terms.reduce(0) { $0 + exp($1 - top) })
        return max(logA, 0) / (a - 1)
    }

    /// The smallest ε over the orders for `steps` compositions at failure probability `delta`.
    public static func epsilon(sampleRate: Double, noiseMultiplier: Double, steps: Int, delta: Double) -> Double {
        precondition(steps >= 0 && delta > 0 && delta < 1)
        if steps == 0 || sampleRate == 0 { return 0 }
        var best = Double.infinity
        for alpha in orders {
            let a = Double(alpha)
            let total = Double(steps) * rdp(sampleRate: sampleRate, noiseMultiplier: noiseMultiplier, order: alpha)
            let eps = total + log((a - 1) / a) - (log(delta) + log(a)) / (a - 1)
            best = min(best, eps)
        }
        return max(best, 0)
    }

    /// The smallest noise multiplier (to 0.1%) whose ε for these settings is at most `epsilon`.
    public static func noiseMultiplier(epsilon target: Double, delta: Double, sampleRate: Double, steps: Int) -> Double {
        precondition(target > 0)
        var low = 0.01, high = 1.0
        while epsilon(sampleRate: sampleRate, noiseMultiplier: high, steps: steps, delta: delta) > target { low = high; high *= 2 }
        while high - low > 1e-3 * high {
            let mid = (low + high) / 2
            if epsilon(sampleRate: sampleRate, noiseMultiplier: mid, steps: steps, delta: delta) > target { low = mid } else { high = mid }
        }
        return high
    }
}

extension PrivacyCalibration {
    /// Whether every field is in its valid range (finite, positive where it must be), as a guarantee read from a
    /// file or a peer must be before it is reported.
    public var isPlausible: Bool {
        epsilon.isFinite && epsilon >= 0 && delta.isFinite && delta > 0 && delta < 1 && noiseMultiplier.isFinite
            && noiseMultiplier > 0 && sampleRate.isFinite && sampleRate > 0 && sampleRate <= 1 && steps >= 0
            && clipNorm.isFinite && clipNorm > 0
    }
}

