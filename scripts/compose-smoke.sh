#!/usr/bin/env bash
# Runs the docker compose demo cluster for real, on a machine with no image registry, and checks its result:
#
#   1. starts a private dockerd (its own data root, exec root and socket in a temporary directory; no bridge, no
#      iptables, no IP forwarding: it changes nothing in the host's networking),
#   2. builds a Debian bookworm base image from `debootstrap --variant=minbase` and `docker import` (the root
#      filesystem tarball is cached in FEDDISTILL_SMOKE_CACHE, so reruns skip debootstrap),
#   3. builds the runtime image FROM it with the host's binary (docker/Dockerfile, target runtime-prebuilt; the
#      runtime packages come from scripts/install-deps.sh --runtime, fetched from the Debian mirror),
#   4. runs docker/compose.yaml + docker/compose.host.yaml with docker-compose (every service in the host network
#      namespace, traffic on loopback only: coordinator on 127.0.0.1:FEDDISTILL_SMOKE_PORT) and a generated override
#      that turns on the coordinator's metrics on the next port, scraping them while the round runs,
#   5. while the schedule runs (FEDDISTILL_SMOKE_ROUNDS rounds, default 3, 20 s apart), crashes the coordinator twice
#      with SIGKILL: between the first and the second round, and during the third; the restart policy brings it back
#      and it resumes the schedule,
#   6. checks that the same three node processes (no node restarted) took part in every round: a `round N: global
#      accuracy` line and result-round-N.json in the `results` volume for every round, each round run once, the
#      coordinator restarted exactly as often as it was crashed, and the scraped metrics,
# and on every exit path (EXIT trap) runs `compose down -v`, stops dockerd and removes its temporary directories.
# Needs root; installs docker.io, docker-compose, debootstrap and curl with apt-get when missing.
#
#   scripts/compose-smoke.sh            (make compose-smoke)
#
# Environment:
#   FEDDISTILL_BIN             the executable to package (default .build/release/feddistill; built on Debian
#                              bookworm, `make release`)
#   FEDDISTILL_SWIFT_BACKTRACE swift-backtrace-static of the toolchain that built it (default: beside `swift`)
#   FEDDISTILL_SMOKE_CACHE     where the debootstrap tarball is kept (default /tmp/feddistill-smoke-cache)
#   FEDDISTILL_SMOKE_PORT      coordinator port on loopback (default 17443; metrics on the port after it)
#   FEDDISTILL_SMOKE_TIMEOUT   seconds allowed for `compose up` (default 2400)
#   FEDDISTILL_SMOKE_KEEP      1: keep the temporary directory (logs; dockerd is still stopped)
#   FEDDISTILL_SMOKE_ROUNDS    rounds of the coordinator's schedule, run in one `compose up` (default 3; with fewer
#                              than 3 the coordinator is not crashed)
#   FEDDISTILL_SMOKE_RUNS      `compose up` runs on the same volumes (default 1); run k continues with round ids after
#                              run k−1's, and the certs service must find the first run's credentials and keep them
#   FEDDISTILL_SMOKE_MNIST_SOURCE  a directory of MNIST IDX files: first import them into the `data` volume with the
#                              `mnist` profile's fetch-mnist service (then FEDDISTILL_DATASET=mnist runs the round on it)
#   DEBIAN_MIRROR              mirror for debootstrap (default: the host's apt mirror, else deb.debian.org)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${FEDDISTILL_BIN:-.build/release/feddistill}
cache=${FEDDISTILL_SMOKE_CACHE:-/tmp/feddistill-smoke-cache}
port=${FEDDISTILL_SMOKE_PORT:-17443}
metrics_port=$((port + 1))
timeout_seconds=${FEDDISTILL_SMOKE_TIMEOUT:-2400}
keep=${FEDDISTILL_SMOKE_KEEP:-0}
suite=bookworm
base_image=feddistill-base:$suite
image=feddistill:smoke

say() { printf 'compose-smoke: %s\n' "$*"; }
die() { printf 'compose-smoke: FAILED: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (dockerd, debootstrap); try: sudo $0"
[[ -x $bin ]] || die "no executable at $bin; build it with 'make release' or set FEDDISTILL_BIN"
bin=$(readlink -f "$bin")
helper=${FEDDISTILL_SWIFT_BACKTRACE:-}
if [[ -z $helper ]] && command -v swift >/dev/null; then
    helper=$(dirname "$(readlink -f "$(command -v swift)")")/../libexec/swift/linux/swift-backtrace-static
fi
[[ -n $helper && -x $helper ]] || die "swift-backtrace-static not found; set FEDDISTILL_SWIFT_BACKTRACE"

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's docker CLI speaks dockerd's API version; another `docker` earlier on PATH may not.
docker_cli=/usr/bin/docker
[[ -x $docker_cli ]] || docker_cli=$(command -v docker)
docker() { "$docker_cli" "$@"; }

# The mirror this host's apt uses (deb822 URIs: or one-line deb entries), main archive only.
mirror=${DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i} /^deb / {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' \
        | grep -E '/debian/?$' | head -n 1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
fi

start_time=$SECONDS
tmp=$(mktemp -d /tmp/feddistill-smoke.XXXXXX)
export DOCKER_HOST=unix://$tmp/docker.sock
project=fddsmoke$$
compose=(docker-compose -p "$project" -f docker/compose.yaml -f docker/compose.host.yaml -f "$tmp/compose.metrics.yaml")
export FEDDISTILL_IMAGE=$image FEDDISTILL_HOST_PORT=$port
dockerd_pid=
key_json_existed=0
[[ -e /etc/docker/key.json ]] && key_json_existed=1
cgroups_before=$(ls -d /sys/fs/cgroup/*/docker 2>/dev/null || true)
# Empty directories dockerd, containerd and debootstrap's mounts create at fixed paths; removed again if new.
run_dirs=(/run/containerd/s /run/containerd /run/docker/plugins /run/docker /run/mount)
new_run_dirs=()
for dir in "${run_dirs[@]}"; do [[ -e $dir ]] || new_run_dirs+=("$dir"); done

host_network() { ip -o link show | awk '{print $2, $3}'; ip -o addr show; ip route show; ip -6 route show; ip rule show; }
host_network >"$tmp/host-network.before"

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n $dockerd_pid ]]; then
        if ((status != 0)) && [[ -s $tmp/compose.log ]]; then
            printf -- '--- docker-compose output (last 40 lines)\n' >&2
            tail -n 40 "$tmp/compose.log" >&2
        fi
        "${compose[@]}" down -v --remove-orphans -t 10 >"$tmp/compose-down.log" 2>&1 \
            || say "warning: compose down failed (see $tmp/compose-down.log)"
        local containerd_pid
        containerd_pid=$(cat "$tmp/exec/containerd/containerd.pid" 2>/dev/null || true)
        kill -TERM "$dockerd_pid" 2>/dev/null
        for _ in $(seq 300); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$dockerd_pid" 2>/dev/null && say "warning: dockerd did not stop in 30 s; killed it"
        wait "$dockerd_pid" 2>/dev/null
        # dockerd stops the containerd it started; make sure of it.
        if [[ -n $containerd_pid ]] && kill -0 "$containerd_pid" 2>/dev/null; then
            kill -TERM "$containerd_pid"; sleep 2; kill -KILL "$containerd_pid" 2>/dev/null
        fi
        if ((status != 0)) && [[ -s $tmp/dockerd.log ]]; then
            printf -- '--- dockerd log (last 15 lines)\n' >&2
            tail -n 15 "$tmp/dockerd.log" >&2
        fi
    fi
    # Anything dockerd left mounted under the temporary directory (overlay layers, volumes, shm).
    findmnt -rn -o TARGET | awk -v prefix="$tmp/" 'index($0, prefix) == 1' | sort -r | while read -r mountpoint; do
        umount -l "$mountpoint" 2>/dev/null
    done
    ((key_json_existed)) || rm -f /etc/docker/key.json  # dockerd 20.10 writes a trust key there
    for cgroup in /sys/fs/cgroup/*/docker; do
        [[ -d $cgroup ]] || continue
        grep -qxF "$cgroup" <<<"$cgroups_before" || rmdir "$cgroup" 2>/dev/null
    done
    for dir in "${new_run_dirs[@]}"; do rmdir "$dir" 2>/dev/null; done
    host_network >"$tmp/host-network.after"
    if ! diff -u "$tmp/host-network.before" "$tmp/host-network.after" >&2; then
        printf 'compose-smoke: FAILED: the host network configuration changed (diff above)\n' >&2
        ((status != 0)) || status=1
    fi
    if [[ $keep == 1 ]]; then say "temporary directory kept: $tmp"; else rm -rf --one-file-system "$tmp"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. a private dockerd --------------------------------------------------------------------------------------------
echo '{}' >"$tmp/daemon.json"
# docker/compose.metrics.yaml publishes a port, which host networking forbids: set only the variable here. Rounds
# open 20 s apart, so that there is a time between rounds to crash the coordinator in.
printf 'services:\n  coordinator:\n    environment:\n      FEDDISTILL_COORDINATOR_METRICS_PORT: "%s"\n      FEDDISTILL_COORDINATOR_ROUND_INTERVAL: "20"\n' \
    "$metrics_port" >"$tmp/compose.metrics.yaml"
dockerd --config-file "$tmp/daemon.json" --data-root "$tmp/data" --exec-root "$tmp/exec" --pidfile "$tmp/dockerd.pid" \
    -H "unix://$tmp/docker.sock" --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    >"$tmp/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 120); do
    docker version >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || die "dockerd exited at start: $(tail -n 5 "$tmp/dockerd.log")"
    sleep 0.5
done
docker version >/dev/null 2>&1 || die "dockerd did not answer within 60 s"
say "dockerd $(docker version -f '{{.Server.Version}}') on $DOCKER_HOST ($((SECONDS - start_time)) s)"

# --- 2. base image from debootstrap -----------------------------------------------------------------------------------
tarball=$cache/debian-$suite-minbase.tar
if [[ ! -s $tarball ]]; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed"
    say "debootstrap --variant=minbase $suite from $mirror (cached afterwards in $tarball)"
    mkdir -p "$cache"
    debootstrap --variant=minbase "$suite" "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 \
        || die "debootstrap failed: $(tail -n 5 "$tmp/debootstrap.log")"
    tar -C "$tmp/rootfs" -c . >"$tarball.partial"
    mv "$tarball.partial" "$tarball"
    rm -rf --one-file-system "$tmp/rootfs"
fi
docker import - "$base_image" <"$tarball" >/dev/null
say "base image $base_image imported ($((SECONDS - start_time)) s)"

# --- 3. the runtime image with the host's binary ---------------------------------------------------------------------
context=$tmp/context
mkdir -p "$context/docker/prebuilt" "$context/scripts"
cp docker/Dockerfile docker/provision.sh "$context/docker/"
cp scripts/install-deps.sh "$context/scripts/"
install -m 0755 "$bin" "$context/docker/prebuilt/feddistill"
install -m 0755 "$helper" "$context/docker/prebuilt/swift-backtrace-static"
# --network host: the RUN steps reach the Debian mirror through the host's own network (there is no bridge).
DOCKER_BUILDKIT=0 docker build --network host -f "$context/docker/Dockerfile" --target runtime-prebuilt \
    --build-arg RUNTIME_BASE="$base_image" -t "$image" "$context" >"$tmp/build.log" 2>&1 \
    || die "docker build failed: $(tail -n 15 "$tmp/build.log")"
say "image $image built, user $(docker image inspect -f '{{.Config.User}}' "$image") ($((SECONDS - start_time)) s)"

# --- 4. the cluster ----------------------------------------------------------------------------------------------------
if [[ -n ${FEDDISTILL_SMOKE_MNIST_SOURCE:-} ]]; then
    FEDDISTILL_MNIST_SOURCE=$(readlink -f "$FEDDISTILL_SMOKE_MNIST_SOURCE") \
        "${compose[@]}" --profile mnist run --rm fetch-mnist >"$tmp/fetch-mnist.log" 2>&1 \
        || die "fetch-mnist failed: $(tail -n 5 "$tmp/fetch-mnist.log")"
    say "fetch-mnist: $(grep -E '^mnist: ' "$tmp/fetch-mnist.log" || echo 'no summary line')"
fi
container() { "${compose[@]}" ps -q "$1"; }
state() { docker inspect -f '{{.State.ExitCode}} {{.RestartCount}}' "$(container "$1")" 2>/dev/null || echo "unknown ?"; }
volume=

rounds=${FEDDISTILL_SMOKE_ROUNDS:-3}
runs=${FEDDISTILL_SMOKE_RUNS:-1}
[[ $rounds =~ ^[1-9][0-9]*$ && $runs =~ ^[1-9][0-9]*$ ]] || die "FEDDISTILL_SMOKE_ROUNDS and FEDDISTILL_SMOKE_RUNS must be positive integers"
export FEDDISTILL_ROUNDS=$rounds

# run_schedule RUN: `up` with the schedule's first round id after the previous run's rounds, then the checks of step 5.
run_schedule() {
    local run=$1 up_start=$SECONDS code restarts line result submitted summary node round first last crashes=0 pid
    first=$(((run - 1) * rounds + 1))
    last=$((first + rounds - 1))
    export FEDDISTILL_ROUND_ID=$first
    rm -f "$tmp/metrics.txt"
    say "run $run: docker-compose up: certs, coordinator on 127.0.0.1:$port (metrics :$metrics_port), node-1..3;" \
        "rounds $first..$last (timeout ${timeout_seconds} s)"
    timeout "$timeout_seconds" "${compose[@]}" up --no-build --no-color >"$tmp/compose.log" 2>&1 &
    local up_pid=$!
    # Scrape while the rounds run; the last scrape before the coordinator exits shows the whole schedule. With three
    # rounds or more, crash the coordinator (SIGKILL to its process, seen from the host: the restart policy applies)
    # once its first round's result is in the volume (between rounds) and once the metrics show the third round open.
    while kill -0 "$up_pid" 2>/dev/null; do
        curl -fsS -m 2 "http://127.0.0.1:$metrics_port/metrics" >"$tmp/metrics.partial" 2>/dev/null \
            && mv "$tmp/metrics.partial" "$tmp/metrics.txt"
        if ((rounds >= 3 && crashes < 2)); then
            [[ -n $volume ]] || volume=$(docker volume inspect -f '{{.Mountpoint}}' "${project}_results" 2>/dev/null || true)
            local crash=
            if ((crashes == 0)) && [[ -n $volume && -s $volume/result-round-$first.json ]]; then
                crash="between rounds $first and $((first + 1))"
            elif ((crashes == 1)) && grep -qx "feddistill_round_id $((first + 2))\(\.0\)\?" "$tmp/metrics.txt" 2>/dev/null \
                && [[ ! -e $volume/result-round-$((first + 2)).json ]]; then
                crash="during round $((first + 2))"
            fi
            pid=$(docker inspect -f '{{.State.Pid}}' "$(container coordinator)" 2>/dev/null || echo 0)
            if [[ -n $crash ]] && ((pid > 0)); then
                kill -KILL "$pid"
                crashes=$((crashes + 1))
                say "run $run: crashed the coordinator (SIGKILL) $crash"
            fi
        fi
        sleep 1
    done
    wait "$up_pid" || die "docker-compose up failed or timed out (status $?)"
    local up_seconds=$((SECONDS - up_start))

    # --- 5. checks -----------------------------------------------------------------------------------------------------
    read -r code restarts <<<"$(state certs)"
    [[ $code == 0 ]] || die "the certs service exited with $code"
    if ((run > 1)); then
        "${compose[@]}" logs --no-color certs 2>&1 | grep -q 'provision: CA present' \
            || die "the certs service did not find the credentials of the first run"
    fi
    read -r code restarts <<<"$(state coordinator)"
    [[ $code == 0 ]] || die "the coordinator exited with $code (restarts: $restarts)"
    # The coordinator came back after each crash (and at no other time) and every round of the schedule ran once.
    ((restarts == crashes)) || die "the coordinator was crashed $crashes time(s) but restarted $restarts time(s)"
    ((rounds < 3 || crashes == 2)) || die "the coordinator was crashed $crashes time(s), not twice (the rounds ended first?)"
    "${compose[@]}" logs --no-color coordinator >"$tmp/coordinator.log" 2>&1
    volume=$(docker volume inspect -f '{{.Mountpoint}}' "${project}_results")
    for ((round = first; round <= last; round++)); do
        line=$(grep -oE "round $round: global accuracy .*" "$tmp/coordinator.log" | tail -n 1) \
            || die "no 'round $round: global accuracy' line in the coordinator's log"
        (($(grep -cE "round $round: global accuracy " "$tmp/coordinator.log") == 1)) || die "round $round ran more than once"
        result=$volume/result-round-$round.json
        [[ -s $result ]] || die "result-round-$round.json is not in the results volume"
        grep -q '"global"' "$result" || die "result-round-$round.json has no global report"
        submitted=$(grep -c '"submitted" : true' "$result" || true)
        ((submitted >= 2)) || die "round $round merged $submitted node set(s), fewer than the quorum"
        say "run $run: round $round: coordinator: $line; $submitted of 3 node sets merged"
    done
    for node in node-1 node-2 node-3; do
        read -r code restarts <<<"$(state "$node")"
        summary=$("${compose[@]}" logs --no-color "$node" 2>/dev/null | grep -oE "node $node: .*" | tail -n 1 || true)
        say "run $run: $node: exit $code, restarts $restarts: ${summary:-no summary line}"
        # A long-lived node takes part in every round and exits 0 after the last: a restart or a missing summary is
        # a failure (a node that cannot write its state under the read-only root filesystem shows up here).
        if [[ $code != 0 || $restarts != 0 || -z $summary ]]; then
            "${compose[@]}" logs --no-color --tail 20 "$node" >&2 || true
            die "$node did not finish cleanly (exit $code, restarts $restarts; its log's tail is above)"
        fi
    done
    if docker network ls --format '{{.Name}}' | grep -q "^${project}_"; then die "compose created a network"; fi
    grep -q '^feddistill_submissions_total{outcome="stored"}' "$tmp/metrics.txt" 2>/dev/null \
        || die "no metrics were scraped from http://127.0.0.1:$metrics_port/metrics"
    say "run $run: metrics: $(grep -E '^feddistill_(submissions_total\{outcome="stored"\}|round_state|global_accuracy)' \
        "$tmp/metrics.txt" | tr '\n' ' ')"
    say "run $run: rounds $first..$last with the same node processes, the coordinator crashed and resumed $crashes" \
        "time(s); results in volume ${project}_results (compose up ${up_seconds} s)"
}

for ((run = 1; run <= runs; run++)); do run_schedule "$run"; done
say "passed: $runs run(s) of $rounds scheduled round(s), total $((SECONDS - start_time)) s"
