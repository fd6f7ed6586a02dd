#!/usr/bin/env bash
# The node's default recipe (DP-DM with a private statistics bank at the default ε) at the smallest partition a node
# shares by default, audited at many seeds (docs/privacy.md, "The node's default"): seed s distills RECORDS training
# records of MNIST shuffled with seed s (distillation seed s) and audits the set with them as members against the next
# RECORDS of the same shuffled order as non-members. Seed FIRST_SEED is also evaluated (accuracy).
#
#   scripts/default-audit-seeds.sh [OUT_DIR]     (env: BIN, DATASET, SEEDS, FIRST_SEED, RECORDS, EPSILON, MODELS, WIDTH, DATA)
#
# About 5 minutes per seed on 2 cores at width 64 (4,000 records); summary in OUT_DIR/seeds.tsv.
set -euo pipefail
OUT=${1:-default-audit-seeds}
SEEDS=${SEEDS:-20}
FIRST_SEED=${FIRST_SEED:-1}
RECORDS=${RECORDS:-4000}
EPSILON=${EPSILON:-8}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
for ((s = FIRST_SEED; s < FIRST_SEED + SEEDS; s++)); do
    evaluate=$([[ $s -eq $FIRST_SEED ]] && echo 1 || echo 0)
    SHUFFLE=$s SEED=$s EVALUATE=$evaluate AUDIT_FLAGS=--no-baseline CONFIGS="dp$EPSILON-seed$s 0-$RECORDS --dp-epsilon $EPSILON" \
        bash "$here/dp-node-scale.sh" "$OUT/seed-$s" | tail -1
done | tee "$OUT/seeds.tsv"
passed=$(grep -c $'\tpass\t' "$OUT/seeds.tsv" || true)
echo "passed $passed of $SEEDS" | tee -a "$OUT/seeds.tsv"
