#!/usr/bin/env bash
# A federated round across real network boundaries on one machine: the coordinator and N nodes (default 3) each run
# in a network namespace of their own, joined by veth pairs to a bridge in one more namespace, on 10.77.0.0/24. Every
# link and address lives inside namespaces this script creates; the host's interfaces, routes and firewall are never
# touched (the script compares them before and after). Needs root and iproute2.
#
#   scripts/netns-cluster.sh            (make netns-cluster)
#   FEDDISTILL_NETNS_NODES=10 FEDDISTILL_NETNS_DELAY_MS=50 FEDDISTILL_NETNS_LOSS=0.01 scripts/netns-cluster.sh
#
# With a delay or a loss, the middle namespace routes instead of bridging, and every packet crosses a userspace
# emulator there (scripts/netem-router.py, on a TUN device: this machine's kernel has no netem qdisc) that drops it
# with probability LOSS or forwards it DELAY ms later, as `tc ... netem delay DELAY loss LOSS` on every namespace's
# interface would: one-way delay DELAY, round trip 2·DELAY. The summary then also counts the packets and bytes that
# crossed the emulated network.
#
# The processes get the same environment variables as docker/compose.yaml: the round settings from
# docker/cluster.env plus, per process, where to listen or connect and which partition to hold. The coordinator's
# certificate names only its namespace address (provisioned by docker/provision.sh, as the compose `certs` service
# does), so the nodes verify it by IP.
#
# Environment:
#   FEDDISTILL_BIN           the executable (default .build/release/feddistill)
#   FEDDISTILL_DATASET       dataset (default digits, embedded); FEDDISTILL_DATA: data directory for others
#   FEDDISTILL_NETNS_SUBNET  first three octets of the /24 (default 10.77.0)
#   FEDDISTILL_NETNS_PORT    coordinator port (default 7443); FEDDISTILL_NETNS_METRICS_PORT: metrics (default 9464)
#   FEDDISTILL_NETNS_NODES   number of nodes, 1...200 (default 3); the round expects them all, quorum from cluster.env
#   FEDDISTILL_NETNS_DELAY_MS, FEDDISTILL_NETNS_LOSS  emulated one-way delay (ms) and packet loss (0...1) (default 0)
#   FEDDISTILL_NETNS_PRIVACY_GATE  true/false: the nodes' privacy gate (default: cluster.env's, true). With many
#                            nodes on digits each holds a dozen records per class and the gate refuses most sets
#   FEDDISTILL_NETNS_TIMEOUT seconds before the run is declared failed (default 900)
#   FEDDISTILL_NETNS_KEEP    1: keep the work directory (certificates, state, logs) and print its path
#   FEDDISTILL_SWIFT_BACKTRACE  swift-backtrace-static for crash reports (default: beside the `swift` on PATH)
#
# Exit status 0 when the coordinator wrote the round's result; non-zero with the reason and log tails otherwise.
# Namespaces and processes are removed on every exit path (EXIT trap).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${FEDDISTILL_BIN:-.build/release/feddistill}
dataset=${FEDDISTILL_DATASET:-digits}
subnet=${FEDDISTILL_NETNS_SUBNET:-10.77.0}
port=${FEDDISTILL_NETNS_PORT:-7443}
metrics_port=${FEDDISTILL_NETNS_METRICS_PORT:-9464}
timeout_seconds=${FEDDISTILL_NETNS_TIMEOUT:-900}
keep=${FEDDISTILL_NETNS_KEEP:-0}
node_count=${FEDDISTILL_NETNS_NODES:-3}
delay_ms=${FEDDISTILL_NETNS_DELAY_MS:-0}
loss=${FEDDISTILL_NETNS_LOSS:-0}
coordinator_ip=$subnet.1
router_ip=$subnet.254

say() { printf 'netns-cluster: %s\n' "$*"; }
die() { printf 'netns-cluster: FAILED: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (ip netns); try: sudo $0"
command -v ip >/dev/null || die "iproute2 (ip) is not installed"
[[ -x $bin ]] || die "no executable at $bin; build it with 'make release' or set FEDDISTILL_BIN"
bin=$(readlink -f "$bin")
[[ -f docker/cluster.env && -x docker/provision.sh ]] || die "docker/cluster.env or docker/provision.sh missing"
[[ $node_count =~ ^[0-9]+$ ]] && ((10#$node_count >= 1 && 10#$node_count <= 200)) \
    || die "FEDDISTILL_NETNS_NODES must be a whole number in 1...200 (got '$node_count')"
node_count=$((10#$node_count))
number='^([0-9]+([.][0-9]*)?|[.][0-9]+)$'
[[ $delay_ms =~ $number && $loss =~ $number ]] && awk -v l="$loss" 'BEGIN { exit !(l < 1) }' \
    || die "FEDDISTILL_NETNS_DELAY_MS must be a number ≥ 0 and FEDDISTILL_NETNS_LOSS a number in [0, 1) (got '$delay_ms', '$loss')"
emulate=$(awk -v d="$delay_ms" -v l="$loss" 'BEGIN { print (d > 0 || l > 0) ? 1 : 0 }')
lossy=$(awk -v l="$loss" 'BEGIN { print (l > 0) ? 1 : 0 }')
((emulate == 0)) || command -v python3 >/dev/null || die "an emulated link needs python3 (scripts/netem-router.py)"
nodes=()
for i in $(seq "$node_count"); do nodes+=("node-$i"); done

start_time=$SECONDS
tag=fdd$$
lan=$tag-lan
namespaces=()
pids=()
work=$(mktemp -d /tmp/feddistill-netns.XXXXXX)

host_network() { ip -o link show | awk '{print $2, $3}'; ip -o addr show; ip route show; ip -6 route show; ip rule show; }
host_network >"$work/host-network.before"

log_tail() {
    local name=$1
    [[ -s $work/$name.log ]] || return 0
    printf -- '--- %s.log (last 15 lines)\n' "$name" >&2
    tail -n 15 "$work/$name.log" >&2
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.2
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    wait 2>/dev/null
    for ns in "${namespaces[@]}"; do
        # Anything still inside a namespace of ours was started by this script.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns delete "$ns" 2>/dev/null || say "warning: could not delete namespace $ns"
    done
    if ((status != 0)); then
        log_tail coordinator
        for node in "${nodes[@]}"; do log_tail "$node"; done
    fi
    host_network >"$work/host-network.after"
    if ! diff -u "$work/host-network.before" "$work/host-network.after" >&2; then
        printf 'netns-cluster: FAILED: the host network configuration changed (diff above)\n' >&2
        ((status != 0)) || status=1
    fi
    if [[ $keep == 1 ]]; then say "work directory kept: $work"; else rm -rf "$work"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- network: a bridge (or, with emulated delay/loss, a router) in its own namespace, one veth pair per process ----
add_namespace() {
    ip netns add "$1"
    namespaces+=("$1")
    ip -n "$1" link set lo up
}
add_namespace "$lan"
emulator_pid=
if ((emulate)); then
    # Routed: each process namespace reaches the others through the router's address; the router sends every packet
    # from a port into the TUN device, the emulator writes it back after the delay (or drops it), and packets from
    # the TUN device follow the main table to their port.
    ip netns exec "$lan" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    ip netns exec "$lan" python3 scripts/netem-router.py --tun netem0 --delay-ms "$delay_ms" --loss "$loss" --seed 1 \
        --stats "$work/netem.stats" >"$work/netem.log" 2>&1 &
    emulator_pid=$!
    pids+=("$emulator_pid")
    for _ in $(seq 50); do ip -n "$lan" link show netem0 >/dev/null 2>&1 && break; sleep 0.1; done
    ip -n "$lan" link show netem0 >/dev/null 2>&1 || { cat "$work/netem.log" >&2; die "the network emulator did not start"; }
    ip -n "$lan" link set netem0 up
    ip -n "$lan" route add default dev netem0 table 100
    ip -n "$lan" rule add iif netem0 lookup main pref 100
    ip -n "$lan" rule add lookup 100 pref 200
else
    ip -n "$lan" link add br0 type bridge
    ip -n "$lan" link set br0 up
fi
# attach NAMESPACE ADDRESS PORTNAME: eth0 in NAMESPACE, its peer PORTNAME on the bridge (or the router). Both ends are
# created inside namespaces (never in the host's), so nothing appears in the root namespace even for a moment.
attach() {
    add_namespace "$1"
    ip -n "$lan" link add "$3" type veth peer name eth0 netns "$1"
    if ((emulate)); then
        ip -n "$lan" link set "$3" up
        ip -n "$lan" addr add "$router_ip/32" dev "$3"
        ip -n "$lan" route add "$2/32" dev "$3"
        ip -n "$1" addr add "$2/32" dev eth0
        ip -n "$1" link set eth0 up
        ip -n "$1" route add "$router_ip/32" dev eth0
        ip -n "$1" route add "$subnet.0/24" via "$router_ip" dev eth0
    else
        ip -n "$lan" link set "$3" master br0 up
        ip -n "$1" addr add "$2/24" dev eth0
        ip -n "$1" link set eth0 up
    fi
}
attach "$tag-coordinator" "$coordinator_ip" p-coordinator
for i in "${!nodes[@]}"; do attach "$tag-${nodes[i]}" "$subnet.$((11 + i))" "p-${nodes[i]}"; done
network="bridged"
((emulate)) && network="routed through an emulated link (one-way delay ${delay_ms} ms, loss $loss)"
say "${#namespaces[@]} namespaces on $subnet.0/24, $network (coordinator $coordinator_ip:$port, ${#nodes[@]} nodes)"

# --- credentials: the compose `certs` service's script; the coordinator certificate names only its IP --------------
FEDDISTILL_BIN=$bin FEDDISTILL_CERTS_DIR=$work/certs FEDDISTILL_CERTS_NODES=$(IFS=,; echo "${nodes[*]}") \
    FEDDISTILL_CERTS_COORDINATOR_SANS=$coordinator_ip docker/provision.sh >"$work/provision.log" 2>&1 \
    || { cat "$work/provision.log" >&2; die "provisioning failed"; }

# --- processes: a clean environment of cluster.env + per-process settings, as in docker/compose.yaml ---------------
mapfile -t cluster_env < <(grep -E '^FEDDISTILL_[A-Z0-9_]+=' docker/cluster.env)
base_env=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work" LANG=C.UTF-8)
# Crash backtraces as in the image, when the static binary's helper can be found (the toolchain that built it).
helper=${FEDDISTILL_SWIFT_BACKTRACE:-}
if [[ -z $helper ]] && command -v swift >/dev/null; then
    helper=$(dirname "$(readlink -f "$(command -v swift)")")/../libexec/swift/linux/swift-backtrace-static
fi
[[ -n $helper && -x $helper ]] || helper=/usr/libexec/swift/linux/swift-backtrace-static
if [[ -x $helper ]]; then
    base_env+=(SWIFT_BACKTRACE="enable=yes,sanitize=yes,threads=all,cache=no,swift-backtrace=$(readlink -f "$helper")")
fi
# The round expects every node of this run, with cluster.env's quorum of 2 (1 for a single node), and the partition
# has one part per node.
size_env=(FEDDISTILL_COORDINATOR_NODES="$(IFS=,; echo "${nodes[*]}")" FEDDISTILL_NODE_PARTITION_NODES="${#nodes[@]}"
    FEDDISTILL_COORDINATOR_QUORUM="$((${#nodes[@]} < 2 ? ${#nodes[@]} : 2))")
[[ -z ${FEDDISTILL_NETNS_PRIVACY_GATE:-} ]] || size_env+=(FEDDISTILL_NODE_PRIVACY_GATE="$FEDDISTILL_NETNS_PRIVACY_GATE")
data_env=()
if [[ -n ${FEDDISTILL_DATA:-} ]]; then
    data_env=(FEDDISTILL_COORDINATOR_DATA_DIR="$FEDDISTILL_DATA" FEDDISTILL_NODE_DATA_DIR="$FEDDISTILL_DATA")
fi

# start NAME NAMESPACE ENV... -- ARGS...: runs the binary in NAMESPACE, output to WORK/NAME.log; PID in pids[].
start() {
    local name=$1 ns=$2
    shift 2
    local environment=()
    while [[ $1 != -- ]]; do environment+=("$1"); shift; done
    shift
    ip netns exec "$ns" env -i "${base_env[@]}" "${cluster_env[@]}" "${size_env[@]}" "${data_env[@]}" "${environment[@]}" \
        "$bin" "$@" >"$work/$name.log" 2>&1 &
    pids+=("$!")
}

# Metrics as with docker/compose.metrics.yaml, on the coordinator's namespace address; scraped from node-1's namespace.
start coordinator "$tag-coordinator" \
    FEDDISTILL_COORDINATOR_HOST="$coordinator_ip" FEDDISTILL_COORDINATOR_PORT="$port" FEDDISTILL_COORDINATOR_ROUND_ID=1 \
    FEDDISTILL_COORDINATOR_STATE_DIR="$work/coordinator" FEDDISTILL_COORDINATOR_CREDENTIALS_DIR="$work/certs/coordinator" \
    FEDDISTILL_COORDINATOR_DATASET="$dataset" FEDDISTILL_COORDINATOR_METRICS_PORT="$metrics_port" \
    FEDDISTILL_COORDINATOR_METRICS_HOST="$coordinator_ip" -- coordinator
coordinator_pid=${pids[-1]}
for _ in $(seq 120); do
    grep -q '^listening on ' "$work/coordinator.log" 2>/dev/null && break
    kill -0 "$coordinator_pid" 2>/dev/null || die "the coordinator exited before listening"
    sleep 0.5
done
grep -q '^listening on ' "$work/coordinator.log" || die "the coordinator did not listen within 60 s"

# Reachability and mutual TLS across the namespace boundary, from every node's namespace, before the nodes start.
for node in "${nodes[@]}"; do
    ip netns exec "$tag-$node" env -i "${base_env[@]}" "$bin" status --coordinator "$coordinator_ip:$port" \
        --credentials-dir "$work/certs/$node" --name "$node" >"$work/status-$node.log" 2>&1 \
        || { cat "$work/status-$node.log" >&2; die "$node cannot reach the coordinator at $coordinator_ip:$port"; }
done
say "coordinator reachable over mutual TLS from every node namespace"
# The standard health service, from the first node's namespace, as an orchestrator's exec probe would ask it.
ip netns exec "$tag-${nodes[0]}" env -i "${base_env[@]}" "$bin" status --health --coordinator "$coordinator_ip:$port" \
    --credentials-dir "$work/certs/healthcheck" --name healthcheck >"$work/health.log" 2>&1 \
    || { cat "$work/health.log" >&2; die "the coordinator's health service does not report SERVING"; }
grep -q '^feddistill.round: SERVING$' "$work/health.log" || { cat "$work/health.log" >&2; die "the round is not admitting"; }
if command -v curl >/dev/null; then
    ip netns exec "$tag-${nodes[0]}" curl -fsS -m 5 "http://$coordinator_ip:$metrics_port/readyz" >"$work/readyz.json" \
        || die "http://$coordinator_ip:$metrics_port/readyz does not answer 200"
    say "health: $(tr '\n' ' ' <"$work/health.log")/readyz $(cat "$work/readyz.json")"
fi

node_pids=()
round_start=$SECONDS
for i in "${!nodes[@]}"; do
    node=${nodes[i]}
    start "$node" "$tag-$node" \
        FEDDISTILL_NODE_NODE_ID="$node" FEDDISTILL_NODE_COORDINATOR="$coordinator_ip:$port" \
        FEDDISTILL_NODE_CREDENTIALS_DIR="$work/certs/$node" FEDDISTILL_NODE_STATE_DIR="$work/$node-state" \
        FEDDISTILL_NODE_DATASET="$dataset" FEDDISTILL_NODE_PARTITION_INDEX="$i" FEDDISTILL_NODE_SEED="$((i + 1))" \
        FEDDISTILL_THREADS=1 -- node
    node_pids+=("${pids[-1]}")
done
say "${#nodes[@]} nodes started; waiting for the round (timeout ${timeout_seconds} s)"

# --- wait: the coordinator exits after writing the result. A node whose privacy gate refuses to send its set exits
# non-zero; once every node has either submitted (it then waits for the result) or ended, and one of them failed,
# SIGUSR1 asks the coordinator to close the round with what it has (as `simulate` does) instead of waiting for the
# deadline.
node_status=()
close_requested=0
last_report=$SECONDS
# Peak resident memory (VmHWM, kB) of the coordinator and of the largest node, read while they run.
peak_kb() { sed -nE 's/^VmHWM:[[:space:]]+([0-9]+) kB/\1/p' "/proc/$1/status" 2>/dev/null || true; }
coordinator_peak_kb=0 node_peak_kb=0
round_seconds=
while kill -0 "$coordinator_pid" 2>/dev/null; do
    kb=$(peak_kb "$coordinator_pid"); ((${kb:-0} > coordinator_peak_kb)) && coordinator_peak_kb=$kb
    for pid in "${node_pids[@]}"; do kb=$(peak_kb "$pid"); ((${kb:-0} > node_peak_kb)) && node_peak_kb=$kb; done
    if [[ -z $round_seconds ]] && grep -qE '^round [0-9]+: global accuracy ' "$work/coordinator.log" 2>/dev/null; then
        round_seconds=$((SECONDS - round_start))
    fi
    ((SECONDS - start_time < timeout_seconds)) || die "no result within ${timeout_seconds} s"
    running=0 failed=0 unsettled=0
    for i in "${!node_pids[@]}"; do
        if [[ -z ${node_status[i]:-} ]]; then
            if kill -0 "${node_pids[i]}" 2>/dev/null; then
                running=$((running + 1))
                grep -q 'set submitted' "$work/${nodes[i]}.log" || unsettled=$((unsettled + 1))
                continue
            fi
            status=0
            wait "${node_pids[i]}" || status=$?
            node_status[i]=$status
            say "${nodes[i]} exited with status $status after $((SECONDS - start_time)) s"
        fi
        ((node_status[i] == 0)) || failed=$((failed + 1))
    done
    if ((unsettled == 0 && failed > 0 && close_requested == 0)); then
        say "every node has submitted or ended, $failed without success; asking the coordinator to close the round"
        kill -USR1 "$coordinator_pid" 2>/dev/null || true
        close_requested=1
    fi
    # The last scrape before the coordinator exits shows the whole round.
    if command -v curl >/dev/null && ((SECONDS % 5 == 0)); then
        ip netns exec "$tag-${nodes[0]}" curl -fsS -m 2 "http://$coordinator_ip:$metrics_port/metrics" \
            >"$work/metrics.partial" 2>/dev/null && mv "$work/metrics.partial" "$work/metrics.txt"
    fi
    if ((SECONDS - last_report >= 30)); then
        say "$((SECONDS - start_time)) s: $running node process(es) running"
        last_report=$SECONDS
    fi
    sleep 1
done
coordinator_status=0
wait "$coordinator_pid" || coordinator_status=$?
# Everything the coordinator sent and received on its link (TLS, uploads, watches, results), from its port's counters.
# The router's side of the pair: what it transmits went to the coordinator, what it receives came from it.
link_bytes=$(ip -n "$lan" -s link show p-coordinator 2>/dev/null \
    | awk '/^ *RX:/ { getline; rx = $1 } /^ *TX:/ { getline; tx = $1 } END { if (rx != "" && tx != "") print tx, rx }' || true)
[[ -n $round_seconds ]] || round_seconds=$((SECONDS - round_start))
for i in "${!node_pids[@]}"; do
    [[ -z ${node_status[i]:-} ]] || continue
    for _ in $(seq 300); do kill -0 "${node_pids[i]}" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "${node_pids[i]}" 2>/dev/null && say "${nodes[i]} still running 30 s after the round; stopped it"
    status=0
    wait "${node_pids[i]}" 2>/dev/null || status=$?
    node_status[i]=$status
done
# Every process started so far has been waited for; only the emulator (if any) still runs. Forget the others' PIDs,
# so that the cleanup cannot signal a process that reused one.
pids=()
[[ -z $emulator_pid ]] || pids=("$emulator_pid")

# --- check --------------------------------------------------------------------------------------------------------
((coordinator_status == 0)) || die "the coordinator exited with status $coordinator_status"
line=$(grep -E '^round [0-9]+: global accuracy ' "$work/coordinator.log" | tail -n 1) \
    || die "the coordinator's log has no 'round N: global accuracy' line"
round=$(sed -E 's/^round ([0-9]+):.*/\1/' <<<"$line")
result=$work/coordinator/result-round-$round.json
[[ -s $result ]] || die "the coordinator did not write $result"
grep -q '"global"' "$result" || die "$result has no global report"
submitted=$(grep -c '"submitted" : true' "$result" || true)
((submitted >= 1)) || die "$result lists no submitted node"
for i in "${!nodes[@]}"; do
    node=${nodes[i]}
    if ((node_status[i] == 0)); then
        say "$node: $(grep -E "^node $node:" "$work/$node.log" | tail -n 1 | sed -E "s/^node $node: //" || true)"
    else
        reason=$(grep -E '^Error: ' "$work/$node.log" | tail -n 1 | sed -E 's/^Error: //' || true)
        say "$node: exited with status ${node_status[i]}: ${reason:-see its log}"
    fi
done
if [[ -s $work/metrics.txt ]]; then
    say "metrics scraped from ${nodes[0]}'s namespace: $(grep -E '^feddistill_(submissions_total|round_state|global_accuracy)' \
        "$work/metrics.txt" | tr '\n' ' ')"
elif command -v curl >/dev/null; then
    die "no metrics could be scraped from http://$coordinator_ip:$metrics_port/metrics"
fi
say "$line ($submitted of ${#nodes[@]} node sets merged; result in result-round-$round.json)"
envelope_bytes=$(sed -nE 's/^feddistill_envelope_bytes_total ([0-9]+).*/\1/p' "$work/metrics.txt" 2>/dev/null | tail -n 1)
say "round: ${round_seconds} s from the nodes' start to the result; sealed sets received: ${envelope_bytes:-?} bytes; \
peak RSS: coordinator $((coordinator_peak_kb / 1024)) MiB, largest node $((node_peak_kb / 1024)) MiB"
if [[ -n $link_bytes ]]; then
    read -r to_coordinator from_coordinator <<<"$link_bytes"
    say "coordinator's link: $to_coordinator bytes received, $from_coordinator bytes sent (IP packets, all calls)"
fi
if [[ -n $emulator_pid ]]; then
    kill -TERM "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
    pids=()
    [[ -s $work/netem.stats ]] || die "the network emulator wrote no counters"
    # shellcheck disable=SC1090 # key=value lines written by scripts/netem-router.py
    source "$work/netem.stats"
    say "emulated network: ${packets_in} packets (${bytes_in} bytes) in, ${packets_dropped} dropped, \
${packets_out} forwarded (${bytes_out} bytes)"
    # At 1% loss, P(no drop in 1,000 packets) = 0.99^1000 ≈ 4e-5.
    ((packets_dropped > 0 || packets_in < 1000 || lossy == 0)) || die "loss $loss was asked for, yet no packet was dropped"
fi
say "passed in $((SECONDS - start_time)) s"
