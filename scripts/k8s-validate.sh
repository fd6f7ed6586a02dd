#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests under deploy/kubernetes (make k8s-validate; .ci/run calls it):
#   1. every overlay renders with `kubectl kustomize`;
#   2. every rendered resource validates, strictly (unknown fields are errors), against the Kubernetes schemas
#      bundled with kubernetes-validate (PyPI; no cluster and no network needed once installed);
#   3. scripts/k8s-policy.py: pods non-root with a read-only root filesystem, no privilege escalation, no
#      capabilities, no host namespaces or hostPath, probes on the coordinator, one coordinator replica, and a
#      NetworkPolicy in front of it;
#   4. the Secrets that `feddistill certs export --kubernetes` writes for a throwaway federation validate too, and
#      every Secret and key the overlays mount is among them (the CA's key never is).
#
# Environment: FEDDISTILL_BIN (default .build/release/feddistill), FEDDISTILL_K8S_TOOLS (the kubernetes-validate
# virtualenv; default .build/k8s-tools), KUBERNETES_VERSION (schema version; default kubernetes-validate's newest).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${FEDDISTILL_BIN:-.build/release/feddistill}
tools=${FEDDISTILL_K8S_TOOLS:-.build/k8s-tools}
validator_version=1.37.0
say() { printf 'k8s-validate: %s\n' "$*"; }
die() { printf 'k8s-validate: FAILED: %s\n' "$*" >&2; exit 1; }

sudo=; [[ $(id -u) -eq 0 ]] || sudo=sudo
if ! command -v kubectl >/dev/null; then
    say "installing kubectl"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubectl >/dev/null 2>&1 \
        || $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
fi
kustomize_version=$(kubectl version --client 2>/dev/null | sed -nE 's/^Kustomize Version: v([0-9]+).*/\1/p')
[[ -n $kustomize_version && $kustomize_version -ge 4 ]] \
    || die "kubectl's kustomize is older than v4 ($(kubectl version --client 2>&1 | tr '\n' ' ')); the manifests use 'labels:' (kustomize ≥ 4.1)"
if [[ ! -x $tools/bin/kubernetes-validate ]]; then
    say "installing kubernetes-validate $validator_version into $tools"
    command -v python3 >/dev/null || die "python3 is not installed"
    python3 -m venv "$tools" 2>/dev/null || {
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$tools"
    }
    "$tools/bin/pip" install -q "kubernetes-validate==$validator_version"
fi
[[ -x $bin ]] || die "no executable at $bin; build it with 'make release' or set FEDDISTILL_BIN"

work=$(mktemp -d /tmp/feddistill-k8s.XXXXXX)
trap 'rm -rf "$work"' EXIT
version_args=()
[[ -z ${KUBERNETES_VERSION:-} ]] || version_args=(--kubernetes-version "$KUBERNETES_VERSION")

# A throwaway federation, provisioned as in docker/provision.sh, exported as Secrets.
FEDDISTILL_BIN=$bin FEDDISTILL_CERTS_DIR=$work/certs FEDDISTILL_CERTS_NODES=node-1,node-2,node-3 \
    FEDDISTILL_CERTS_COORDINATOR_SANS=feddistill-coordinator docker/provision.sh >"$work/provision.log" 2>&1 \
    || { cat "$work/provision.log" >&2; die "provisioning failed"; }
"$bin" certs export --kubernetes --dir "$work/certs" --out "$work/secrets.yaml" >/dev/null
[[ $(stat -c %a "$work/secrets.yaml") == 600 ]] || die "certs export did not write its output with mode 0600"
"$tools/bin/kubernetes-validate" --strict --quiet "${version_args[@]}" "$work/secrets.yaml" \
    || die "the exported Secrets do not validate"

overlays=(deploy/kubernetes/overlays/*/)
for overlay in "${overlays[@]}"; do
    name=$(basename "$overlay")
    kubectl kustomize "$overlay" >"$work/$name.yaml" 2>"$work/$name.err" \
        || { cat "$work/$name.err" >&2; die "overlay $name does not render"; }
    "$tools/bin/kubernetes-validate" --strict --quiet "${version_args[@]}" "$work/$name.yaml" \
        || die "overlay $name does not validate against the Kubernetes schemas"
    "$tools/bin/python" scripts/k8s-policy.py "$work/$name.yaml" "$work/secrets.yaml" \
        || die "overlay $name breaks the deployment policy"
    say "$name: $(grep -c '^kind: ' "$work/$name.yaml") resources render, validate and follow the policy"
done
say "passed (${#overlays[@]} overlays; exported Secrets validate and cover every mount)"
