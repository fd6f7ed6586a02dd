#!/usr/bin/env bash
# DP-DM at node scale (docs/privacy.md, "DP-DM at node scale"): distill MNIST-sized node partitions with and without
# differential privacy, evaluate each set with the protocol's ConvNet (width 128, fresh models, the full test split),
# and audit it on an exchangeable member/non-member split.
#
#   scripts/dp-node-scale.sh [OUT_DIR]     (env: BIN, DATASET, MODELS, WIDTH, DATA, CONFIGS, SHUFFLE, SEED, EVALUATE,
#                                           AUDIT_ONLY, AUDIT_FLAGS)
#
# CONFIGS holds one configuration per line: NAME RANGE [DISTILL FLAGS...]. RANGE is FIRST-LAST of the training split
# shuffled with the seed SHUFFLE (default 1; the node's records). When the range leaves as many records after it, the
# set is audited with the range as members and the next records of the same shuffled order as non-members; the full
# split (0-60000) is evaluated only. SHUFFLE=none takes ranges of the stored order instead, which MNIST's audits tell
# apart even for a set that saw neither range (docs/privacy.md). SEED (default 0) is the distillation's seed.
# EVALUATE=0 skips the accuracy evaluation. With
# AUDIT_ONLY (space-separated names) only those configurations are audited (an audit at 600 records per class trains
# its baseline model on 6,000 records and takes about 10 minutes; AUDIT_FLAGS=--no-baseline skips that model).
#
# Release build expected (make release). Each configuration takes about 10 minutes on 2 cores at width 64.
set -euo pipefail
BIN=${BIN:-.build/release/feddistill}
OUT=${1:-dp-node-scale}
DATASET=${DATASET:-mnist}
MODELS=${MODELS:-3}
WIDTH=${WIDTH:-64}
TRAIN_SIZE=${TRAIN_SIZE:-60000}
SHUFFLE=${SHUFFLE:-1}
EVALUATE=${EVALUATE:-1}
SEED=${SEED:-0}
at() { [[ $SHUFFLE == none ]] && echo "$1" || echo "$1@$SHUFFLE"; }
DATA_ARGS=()
if [[ -n "${DATA:-}" ]]; then DATA_ARGS=(--data-dir "$DATA"); fi
CONFIGS=${CONFIGS:-"dp1-full 0-60000 --dp-epsilon 1
dp1-600 0-6000 --dp-epsilon 1
default-600 0-6000"}
mkdir -p "$OUT"
printf 'name\trange\tflags\tdistill_s\taccuracy\tstd\tepsilon\tsigma\tverdict\taudit\n' > "$OUT/summary.tsv"
while read -r name range flags; do
    [[ -z "$name" ]] && continue
    first=${range%-*}; last=${range#*-}; size=$((last - first))
    set_file="$OUT/$name.safetensors"
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$BIN" distill --dataset "$DATASET" "${DATA_ARGS[@]}" --train-range "$(at "$range")" --ipc 10 --seed "$SEED" --width "$WIDTH" $flags \
        --out "$set_file" --json "$OUT/$name-distill.json" >/dev/null
    seconds=$(( $(date +%s) - start ))
    if [[ $EVALUATE != 0 ]]; then
        "$BIN" evaluate --set "$set_file" --dataset "$DATASET" "${DATA_ARGS[@]}" --models "$MODELS" --epochs 300 \
            --json "$OUT/$name-evaluate.json" >/dev/null
    fi
    verdict=- audit=-
    if (( last + size <= TRAIN_SIZE )) && [[ -z "${AUDIT_ONLY:-}" || " $AUDIT_ONLY " == *" $name "* ]]; then
        status=0
        "$BIN" audit --set "$set_file" "${DATA_ARGS[@]}" --members "$DATASET:train:$(at "$range")" \
            --nonmembers "$DATASET:train:$(at "$last-$((last + size))")" ${AUDIT_FLAGS:-} --json "$OUT/$name-audit.json" > "$OUT/$name-audit.txt" || status=$?
        if [[ $status -ne 0 && $status -ne 3 ]]; then echo "audit of $name failed ($status)" >&2; exit "$status"; fi
        verdict=$([[ $status -eq 0 ]] && echo pass || echo fail)
        audit=$(python3 -c "
import json,sys
r=json.load(open(sys.argv[1]))
print(' '.join('%s:%.3f' % (k, v['auc']) for k, v in sorted(r['attacks'].items())))" "$OUT/$name-audit.json" 2>/dev/null || echo '?')
    fi
    python3 - "$OUT" "$name" "$range" "$flags" "$seconds" "$verdict" "$audit" >> "$OUT/summary.tsv" <<'EOF'
import json, sys
out, name, rng, flags, seconds, verdict, audit = sys.argv[1:]
try:
    e = json.load(open(f"{out}/{name}-evaluate.json"))
except FileNotFoundError:
    e = {"accuracy_mean": float("nan"), "accuracy_std": float("nan")}
d = json.load(open(f"{out}/{name}-distill.json"))
p = d.get("differential_privacy") or {}
print("\t".join([name, rng, flags or "-", seconds, "%.2f" % (100 * e["accuracy_mean"]), "%.2f" % (100 * e["accuracy_std"]),
                 "%.3f" % p["epsilon"] if p else "inf", "%.3f" % p["noise_multiplier"] if p else "-", verdict, audit]))
EOF
    tail -1 "$OUT/summary.tsv"
done <<< "$CONFIGS"
