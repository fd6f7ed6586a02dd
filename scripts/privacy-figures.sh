#!/usr/bin/env bash
# The privacy figures of docs/privacy.md: DM IPC 10 on an MNIST subset with init real vs noise vs mean — accuracy
# of the set next to DCR, loss-attack and LiRA membership metrics, canaries, and the members-trained baseline.
#
#   scripts/privacy-figures.sh [OUT_DIR]      (env: BIN, DATASET, MEMBERS, ITERATIONS, SHADOWS, CANARIES, WIDTH, EPOCHS, DATA,
#                                              INITS)
#
# INITS (default "real noise mean") picks the configurations; each entry is an init, or noise-dp:EPS for DP-DM from
# noise at privacy budget EPS (e.g. INITS="noise noise-dp:1 noise-dp:8").
#
# Members are training records 0..<MEMBERS, non-members the next MEMBERS training records: the same distribution.
# (MNIST's test split comes from other writers; using it as non-members makes a distribution shift look like
# membership leakage.)
#
# Release build expected (make release). Takes tens of minutes on 2 cores.
set -euo pipefail
BIN=${BIN:-.build/release/feddistill}
OUT=${1:-privacy-figures}
DATASET=${DATASET:-mnist}
MEMBERS=${MEMBERS:-1000}
ITERATIONS=${ITERATIONS:-200}
SHADOWS=${SHADOWS:-4}
CANARIES=${CANARIES:-50}
WIDTH=${WIDTH:-128}
EPOCHS=${EPOCHS:-100}
DATA_ARGS=()
if [[ -n "${DATA:-}" ]]; then DATA_ARGS=(--data-dir "$DATA"); fi
mkdir -p "$OUT"
for config in ${INITS:-real noise mean}; do
    init=${config%%-dp:*}
    DP_ARGS=()
    if [[ "$config" == *-dp:* ]]; then DP_ARGS=(--dp-epsilon "${config##*-dp:}"); fi
    set_file="$OUT/$config.safetensors"
    "$BIN" distill --dataset "$DATASET" "${DATA_ARGS[@]}" "${DP_ARGS[@]}" --train-range "0-$MEMBERS" --method dm --ipc 10 \
        --iterations "$ITERATIONS" --init "$init" --seed 1 --width "$WIDTH" --out "$set_file" --json "$OUT/$config-distill.json" >/dev/null
    "$BIN" evaluate --set "$set_file" --dataset "$DATASET" "${DATA_ARGS[@]}" --models 3 --epochs 300 --width "$WIDTH" \
        --json "$OUT/$config-evaluate.json" >/dev/null
    status=0
    "$BIN" audit --set "$set_file" "${DATA_ARGS[@]}" --members "$DATASET:train:0-$MEMBERS" \
        --nonmembers "$DATASET:train:$MEMBERS-$((2 * MEMBERS))" --attacks dcr,dcr_embedding,loss,lira --shadows "$SHADOWS" \
        --shadow-iterations "$ITERATIONS" --width "$WIDTH" --epochs "$EPOCHS" --canaries "$CANARIES" --json "$OUT/$config-audit.json" \
        --roc "$OUT/$config-roc.svg" > "$OUT/$config-audit.txt" || status=$?
    if [[ $status -ne 0 && $status -ne 3 ]]; then echo "audit of $config failed ($status)" >&2; exit "$status"; fi
    echo "== $config (audit exit $status)"; cat "$OUT/$config-audit.txt"
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('accuracy %.2f%% ± %.2f%%' % (100*r['accuracy_mean'], 100*r['accuracy_std']))" "$OUT/$config-evaluate.json"
done
