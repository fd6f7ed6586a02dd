#!/usr/bin/env bash
# A long-running coordinator on this machine: one coordinator process runs ROUNDS scheduled rounds (default 3) on
# digits with the same long-lived node services (`node --rounds 0`) and the dashboard on loopback; after the
# schedule it keeps serving (exit_after_round false), an operator's `feddistill round start` opens one more round,
# and the script stops everything. Prints the round history (`status`), and with SCREENSHOT=PATH saves a
# headless-Chromium screenshot of the dashboard at the end (docs/operations.md shows one).
#
#   scripts/rounds-demo.sh                       3 rounds, 3 nodes, reduced budgets (see the flags below)
#   ROUNDS=2 NODES=2 SCREENSHOT=/tmp/d.png scripts/rounds-demo.sh
#
# Needs the feddistill binary (FEDDISTILL_BIN, default .build/release/feddistill); Chromium only for SCREENSHOT.
set -euo pipefail
bin=${FEDDISTILL_BIN:-.build/release/feddistill}
rounds=${ROUNDS:-3}
count=${NODES:-3}
work=$(mktemp -d /tmp/feddistill-rounds.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -n "${KEEP:-}" ]] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

certs=$work/certs
"$bin" certs init --dir "$certs" >/dev/null
"$bin" certs issue --dir "$certs" --role coordinator --name coordinator >/dev/null
"$bin" keys generate --dir "$certs" --name coordinator >/dev/null
"$bin" certs issue --dir "$certs" --role operator --name ops >/dev/null
nodes=()
for i in $(seq 1 "$count"); do
    nodes+=("node-$i")
    "$bin" certs issue --dir "$certs" --role node --name "node-$i" >/dev/null
    "$bin" keys generate --dir "$certs" --name "node-$i" >/dev/null
done
node_list=$(IFS=,; echo "${nodes[*]}")

FEDDISTILL_COORDINATOR_EXIT_AFTER_ROUND=false "$bin" coordinator --port 0 --dashboard-port 0 --state-dir "$work/state" --credentials-dir "$certs" --nodes "$node_list" \
    --dataset digits --ipc 10 --node-iterations 200 --merge-iterations 200 --eval-models 3 --eval-epochs 300 \
    --rounds "$rounds" --round-interval 5 --threads 1 >"$work/coordinator.out" 2>"$work/coordinator.log" &
pids+=($!)
coordinator_pid=$!
for _ in $(seq 1 100); do
    grep -q "^listening on" "$work/coordinator.out" 2>/dev/null && grep -q "^dashboard on" "$work/coordinator.out" && break
    sleep 0.2
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/coordinator.out")
dashboard=$(sed -n 's/^dashboard on .*:\([0-9]*\)$/\1/p' "$work/coordinator.out")
[[ -n "$port" && -n "$dashboard" ]] || { cat "$work/coordinator.log" >&2; echo "the coordinator did not start" >&2; exit 1; }
echo "coordinator on 127.0.0.1:$port, dashboard http://127.0.0.1:$dashboard/ ($rounds rounds, ${#nodes[@]} node services)"

for i in "${!nodes[@]}"; do
    "$bin" node --node-id "${nodes[i]}" --coordinator "127.0.0.1:$port" --credentials-dir "$certs" --dataset digits \
        --partition dirichlet:0.5 --partition-nodes "${#nodes[@]}" --partition-index "$i" --seed "$((i + 1))" \
        --state-dir "$work/nodes" --rounds 0 --privacy-gate false --dp-epsilon off --min-records-per-class 0 --threads 1 >"$work/${nodes[i]}.out" 2>"$work/${nodes[i]}.log" &
    pids+=($!)
done

start=$(date +%s)
status() { "$bin" status --coordinator "127.0.0.1:$port" --credentials-dir "$certs" --name ops "$@"; }
finished() {
    status --json | python3 -c 'import json,sys; print(sum(r.get("phase") == "ROUND_PHASE_FINISHED" for r in json.load(sys.stdin).get("history", [])))'
}
wait_for() {
    until [[ "$(finished)" -ge "$1" ]]; do
        kill -0 "$coordinator_pid" 2>/dev/null || { tail -20 "$work/coordinator.log" >&2; echo "the coordinator failed" >&2; exit 1; }
        sleep 2
    done
}
wait_for "$rounds"
echo "$rounds scheduled rounds finished after $(( $(date +%s) - start )) s; an operator starts one more"
"$bin" round start --coordinator "127.0.0.1:$port" --credentials-dir "$certs" --name ops
wait_for "$((rounds + 1))"
echo "round $((rounds + 1)) finished after $(( $(date +%s) - start )) s"
status
if [[ -n "${SCREENSHOT:-}" ]]; then
    chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
        --user-data-dir="$work/chromium" --virtual-time-budget=4000 --run-all-compositor-stages-before-draw \
        --hide-scrollbars --window-size=1400,1900 --screenshot="$SCREENSHOT" "http://127.0.0.1:$dashboard/" 2>/dev/null
    echo "screenshot: $SCREENSHOT"
fi
kill -TERM "$coordinator_pid"
wait "$coordinator_pid" 2>/dev/null || true
