#!/bin/sh
# Provisions the credentials of a FedDistill federation, idempotently: anything already present is kept, so running
# it again (every `docker compose up`) changes nothing. The image installs it as /usr/local/bin/feddistill-provision;
# the compose file's `certs` service and scripts/netns-cluster.sh run it.
#
# Environment:
#   FEDDISTILL_CERTS_DIR               root directory (default /certs)
#   FEDDISTILL_CERTS_NODES             node ids, comma-separated (default node-1,node-2,node-3)
#   FEDDISTILL_CERTS_COORDINATOR_SANS  names and IPs nodes use to reach the coordinator, comma-separated
#                                      (default coordinator,localhost,127.0.0.1)
#   FEDDISTILL_BIN                     the feddistill executable (default: feddistill on PATH)
#
# Layout (each role's directory holds exactly what that role needs; only ca/ holds the CA key):
#   ca/            ca.pem, ca.key and every certificate the CA issued (the record to revoke from)
#   coordinator/   ca.pem, coordinator.pem, coordinator.key, coordinator.sealing.{key,pub}, NODE.signing.pub per node
#   NODE/          ca.pem, NODE.pem, NODE.key, NODE.signing.{key,pub}
#   healthcheck/   ca.pem, healthcheck.pem, healthcheck.key: a client certificate for `feddistill status` probes
#                  (not a registered node: the coordinator refuses it for Join, Submit and WatchRound)
set -eu

root=${FEDDISTILL_CERTS_DIR:-/certs}
nodes=$(printf '%s' "${FEDDISTILL_CERTS_NODES:-node-1,node-2,node-3}" | tr ',' ' ')
sans=$(printf '%s' "${FEDDISTILL_CERTS_COORDINATOR_SANS:-coordinator,localhost,127.0.0.1}" | tr ',' ' ')
bin=${FEDDISTILL_BIN:-feddistill}
ca=$root/ca

umask 077
mkdir -p "$root"

if [ ! -f "$ca/ca.pem" ]; then
    "$bin" certs init --dir "$ca" --common-name "FedDistill federation CA"
else
    echo "provision: CA present in $ca"
fi

# issue ROLE NAME [SAN...]: a certificate in the CA directory, copied with ca.pem into DIR/NAME/.
issue() {
    role=$1 name=$2 target=$3
    shift 3
    if [ ! -f "$ca/$name.pem" ]; then
        set -- certs issue --dir "$ca" --role "$role" --name "$name" "$@"
        "$bin" "$@"
    fi
    mkdir -p "$target"
    for file in ca.pem "$name.pem" "$name.key"; do
        [ -f "$target/$file" ] || cp -p "$ca/$file" "$target/$file"
    done
}

san_arguments=
for san in $sans; do san_arguments="$san_arguments --san $san"; done
# shellcheck disable=SC2086 # one --san per word
issue coordinator coordinator "$root/coordinator" $san_arguments
[ -f "$root/coordinator/coordinator.sealing.key" ] || "$bin" keys generate --dir "$root/coordinator" --name coordinator

for node in $nodes; do
    issue node "$node" "$root/$node"
    [ -f "$root/$node/$node.signing.key" ] || "$bin" keys generate --dir "$root/$node" --name "$node"
    # The coordinator registers a node by its signing public key.
    [ -f "$root/coordinator/$node.signing.pub" ] || cp -p "$root/$node/$node.signing.pub" "$root/coordinator/"
done

issue node healthcheck "$root/healthcheck"

echo "provision: credentials ready in $root (coordinator SANs: $sans; nodes: $nodes)"
