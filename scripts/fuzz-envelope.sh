#!/usr/bin/env bash
# Fuzzes SealedEnvelope.parse (and open, with fixed keys) with libFuzzer and AddressSanitizer.
#
#   scripts/fuzz-envelope.sh [SECONDS]     (default 30)
#
# Builds Fuzz/EnvelopeFuzz with `swiftc -sanitize=fuzzer,address` from the parser sources only (they import
# CSodium and nothing else; no gRPC), writes the binary and corpus under .build-fuzz/, and runs for a bounded
# time. A crash leaves crash-* files in .build-fuzz/; turn each into a regression test in EnvelopeTests.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-30}"
out="$repo/.build-fuzz"
mkdir -p "$out/corpus"

sources=(
    "$repo/Sources/Protocol/ProtocolVersion.swift"
    "$repo/Sources/Protocol/Envelope/ByteReader.swift"
    "$repo/Sources/Protocol/Envelope/EnvelopeError.swift"
    "$repo/Sources/Protocol/Envelope/EnvelopeHeader.swift"
    "$repo/Sources/Protocol/Envelope/EnvelopeLimits.swift"
    "$repo/Sources/Protocol/Envelope/SealedEnvelope.swift"
    "$repo/Sources/Protocol/Envelope/SealedEnvelope+Crypto.swift"
    "$repo/Sources/Protocol/Envelope/SodiumKeys.swift"
    "$repo/Fuzz/EnvelopeFuzz/EnvelopeFuzz.swift"
)

swiftc -sanitize=fuzzer,address -parse-as-library -g -O \
    -module-name EnvelopeFuzz -package-name feddistill \
    -I "$repo/Sources/CSodium" \
    "${sources[@]}" -o "$out/envelope-fuzz"

cd "$out"
FDSE_WRITE_SEED=corpus/seed-valid-envelope ./envelope-fuzz -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 corpus
