#!/usr/bin/env python3
"""Policy checks on rendered Kubernetes manifests (called by scripts/k8s-validate.sh).

usage: k8s-policy.py RENDERED.yaml EXPORTED-SECRETS.yaml

Every pod template: runAsNonRoot with a non-zero user, read-only root filesystem, no privilege escalation, all
capabilities dropped, RuntimeDefault seccomp, no host namespaces, no hostPath volumes, no service-account token.
The coordinator: one replica (its SQLite state is single-writer), readiness and liveness probes, a NetworkPolicy
selecting it. Every Secret (and key) a pod mounts is one that `feddistill certs export --kubernetes` writes, and no
pod mounts the CA's private key. Prints each violation and exits 1 if there is any.
"""
import sys

import yaml

rendered = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
exported = {d["metadata"]["name"]: set(d["data"]) for d in yaml.safe_load_all(open(sys.argv[2])) if d}
problems = []


def pod_templates():
    for doc in rendered:
        spec = doc.get("spec", {})
        if doc["kind"] in ("StatefulSet", "Deployment", "Job", "DaemonSet"):
            yield doc, spec["template"]


def check_pod(doc, template):
    where = f'{doc["kind"]}/{doc["metadata"]["name"]}'
    pod = template["spec"]
    context = pod.get("securityContext", {})
    if context.get("runAsNonRoot") is not True or not context.get("runAsUser"):
        problems.append(f"{where}: pod must set runAsNonRoot and a non-zero runAsUser")
    if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod must use the RuntimeDefault seccomp profile")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: the pod needs no service-account token (automountServiceAccountToken: false)")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{where}: {key} is not allowed")
    for container in pod.get("initContainers", []) + pod["containers"]:
        c = container.get("securityContext", {})
        name = f'{where} container {container["name"]}'
        if c.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem must be true")
        if c.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if c.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: must drop ALL capabilities")
        if "resources" not in container or "requests" not in container["resources"]:
            problems.append(f"{name}: must request resources")
    for volume in pod.get("volumes", []):
        if "hostPath" in volume:
            problems.append(f'{where}: hostPath volume {volume["name"]} is not allowed')
        sources = [volume["secret"] | {"name": volume["secret"]["secretName"]}] if "secret" in volume else [
            s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
        for source in sources:
            secret = source["name"]
            if secret not in exported:
                problems.append(f"{where}: mounts Secret {secret}, which `certs export --kubernetes` does not write")
                continue
            keys = [item["key"] for item in source.get("items", [])] or sorted(exported[secret])
            for key in keys:
                if key not in exported[secret]:
                    problems.append(f"{where}: mounts key {key} of Secret {secret}, which has no such key")
                if key == "ca.key":
                    problems.append(f"{where}: mounts the CA's private key")


for doc, template in pod_templates():
    check_pod(doc, template)

coordinators = [d for d in rendered if d["kind"] == "StatefulSet"
                and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "coordinator"]
if len(coordinators) != 1:
    problems.append(f"expected exactly one coordinator StatefulSet, found {len(coordinators)}")
for coordinator in coordinators:
    if coordinator["spec"].get("replicas") != 1:
        problems.append("the coordinator must run exactly one replica (its state is single-writer)")
    container = coordinator["spec"]["template"]["spec"]["containers"][0]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        if container.get(probe, {}).get("httpGet", {}).get("path") != path:
            problems.append(f"the coordinator needs a {probe} on {path}")
    labels = coordinator["spec"]["template"]["metadata"]["labels"]
    policies = [d for d in rendered if d["kind"] == "NetworkPolicy"
                and all(labels.get(k) == v for k, v in d["spec"]["podSelector"].get("matchLabels", {}).items())
                and "Ingress" in d["spec"].get("policyTypes", [])]
    if not policies:
        problems.append("no NetworkPolicy restricts ingress to the coordinator")

for problem in problems:
    print(f"k8s-policy: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
