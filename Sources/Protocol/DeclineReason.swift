/// How a node's `Decline` reason says why it will not submit: the privacy gate refused its set (`privacyGate`), or it
/// cannot run the round's recipe with its own settings (`recipe`, e.g. a method differential privacy does not cover).
/// The coordinator counts gate refusals by this prefix; the rest of the reason is the node's free text.
public enum DeclineReason {
    public static let privacyGate = "privacy gate: "
    public static let recipe = "recipe: "

    /// Whether `reason` is a privacy-gate refusal.
    public static func isPrivacyGate(_ reason: String) -> Bool { reason.hasPrefix(privacyGate) }
}
