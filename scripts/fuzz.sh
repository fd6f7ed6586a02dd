#!/usr/bin/env bash
# Fuzzes every parser of outside bytes with libFuzzer and AddressSanitizer, each for a bounded time:
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]     SECONDS per target (default 30); targets (default: all):
#     envelope     SealedEnvelope.parse and open (scripts/fuzz-envelope.sh)
#     safetensors  SyntheticSet.decode: safetensors container, strict JSON header, metadata validation
#     npy          NPY.parse
#     idx          IDXLoader.parseImages / parseLabels
#     gzip         FileBytes.gunzip with a 1 MiB output limit
#
# The Distill targets share one binary built with `swiftc -sanitize=fuzzer,address` from the Distill sources and
# Fuzz/DistillFuzz (no SwiftPM), FUZZ_TARGET choosing the parser; binaries and corpora go under .build-fuzz/. A
# crash leaves crash-* files there and fails the script: turn each into a regression test (Tests/DistillTests/HostileInputTests.swift).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(envelope safetensors npy idx gzip)
out="$repo/.build-fuzz"
mkdir -p "$out"

# All of Distill (it has no SwiftPM dependencies: fetching datasets is DatasetFetch's job), so the parsers are fuzzed
# exactly as built, with whatever types the set metadata is made of.
distill=()
while IFS= read -r file; do distill+=("$file"); done < <(find "$repo/Sources/Distill" -name '*.swift' | sort)

built=false
for target in "${targets[@]}"; do
    case "$target" in
        envelope) "$repo/scripts/fuzz-envelope.sh" "$seconds"; continue ;;
        safetensors) max_len=65536 ;;
        npy|idx|gzip) max_len=4096 ;;
        *) echo "fuzz.sh: unknown target '$target' (envelope, safetensors, npy, idx, gzip)" >&2; exit 2 ;;
    esac
    if [ "$built" = false ]; then
        echo "== building DistillFuzz (the Distill sources and Fuzz/DistillFuzz)" >&2
        swiftc -sanitize=fuzzer,address -parse-as-library -g -O -module-name DistillFuzz \
            -I "$repo/Sources/CZlib" -I "$repo/Sources/COpenBLAS" \
            "${distill[@]}" "$repo/Fuzz/DistillFuzz/DistillFuzz.swift" -o "$out/distill-fuzz"
        built=true
    fi
    mkdir -p "$out/corpus-$target"
    echo "== $target: fuzzing for ${seconds} s" >&2
    (cd "$out" && FUZZ_TARGET="$target" FUZZ_WRITE_SEED="corpus-$target/seed-valid" ./distill-fuzz -max_total_time="$seconds" \
        -max_len="$max_len" -rss_limit_mb=2048 -print_final_stats=1 "corpus-$target")
done
