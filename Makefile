# FedDistill — the two commands: `make demo` runs the main job, `make test` runs the tests.
# Both install missing Debian packages first (scripts/install-deps.sh; a fast no-op when present).

SWIFT ?= swift
RELEASE_BIN := .build/release/feddistill
DEBUG_BIN := .build/debug/feddistill

.PHONY: all deps build release test test-slow test-all demo bench fuzz clean help netns-cluster compose-config compose-smoke k8s-validate

all: build

help:
	@echo "make demo     run the main job (see README)"
	@echo "make test     build and run the fast test lane (minutes)"
	@echo "make test-all the fast lane, then the slow and end-to-end suites (make test-slow)"
	@echo "make bench    release build + feddistill bench"
	@echo "make release  release build of feddistill"
	@echo "make fuzz     libFuzzer runs of every parser of outside bytes, FUZZ_SECONDS (30) each"
	@echo "make netns-cluster   a round with the coordinator and 3 nodes in separate network namespaces (root)"
	@echo "make compose-config  validate docker/compose.yaml and its overrides with docker-compose"
	@echo "make compose-smoke   run the docker compose cluster on a private dockerd, no registry needed (root)"
	@echo "make k8s-validate    render deploy/kubernetes overlays and validate them offline against the Kubernetes schemas"

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build --product feddistill

# Statically linked Swift runtime: the same binary the container image packages (docker/Dockerfile).
release: deps
	$(SWIFT) build -c release --static-swift-stdlib --product feddistill

# The slow lane: end-to-end suites that start processes, and accuracy/privacy checks that distill and train for
# minutes. `make test` skips them; `make test-slow` runs only them; `make test-all` (CI) runs both. The process suite
# and the numeric ones run one after the other, not side by side: twice, libdispatch's manager thread crashed
# (_dispatch_event_loop_drain) while child-process sources and heavy concurrentPerform work ran in one test process.
SLOW_PROCESS_TESTS := FaultToleranceTests|DashboardBrowserTests
SLOW_NUMERIC_TESTS := dmBeatsRandomOnDigits|defaultRecipeBeatsRandomOnDigits|lossAttackDetectsAModelTrainedOnMembers|defaultSharedSetPasses
SLOW_TESTS := $(SLOW_PROCESS_TESTS)|$(SLOW_NUMERIC_TESTS)

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip '$(SLOW_TESTS)'

test-slow: deps
	@scripts/install-deps.sh --browser
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter '$(SLOW_NUMERIC_TESTS)'
	$(SWIFT) test --skip-build --filter '$(SLOW_PROCESS_TESTS)'

test-all: test test-slow

# The main job: a federated round on the embedded digits dataset — 4 node processes distill Dirichlet(0.5)
# partitions with DM (IPC 10) and submit sealed sets over mutual TLS; the coordinator merges them by distribution
# matching and evaluates the global model against the union and centralized-DM baselines. The digits are public and
# hold about 36 records per class per node, far below a node's default minimum (400 per class, with DP-DM at ε = 8):
# the demo turns both off.
demo: release
	$(RELEASE_BIN) simulate --dataset digits --nodes 4 --partition dirichlet:0.5 --ipc 10 --iterations 200 \
		--merge-iterations 200 --dp-epsilon off --min-records-per-class 0 --out demo-global.safetensors --json demo-result.json

bench: release
	$(RELEASE_BIN) bench
	$(RELEASE_BIN) bench --protocol

FUZZ_SECONDS ?= 30
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Deployment checks (docs/operations.md). Both scripts need root and take the binary from FEDDISTILL_BIN, default
# $(RELEASE_BIN); both clean up after themselves, also on failure.
netns-cluster: release
	FEDDISTILL_BIN=$(RELEASE_BIN) scripts/netns-cluster.sh

# Kubernetes manifests (deploy/kubernetes): render every overlay, validate it offline against the Kubernetes schemas
# (kubernetes-validate from PyPI, in .build/k8s-tools) and the deployment policy, with Secrets exported by the binary.
k8s-validate: release
	FEDDISTILL_BIN=$(RELEASE_BIN) scripts/k8s-validate.sh

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
compose-config:
	@command -v docker-compose >/dev/null || { echo "installing docker-compose" >&2; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		docker-compose >/dev/null; }
	docker-compose -f docker/compose.yaml config -q
	docker-compose -f docker/compose.yaml -f docker/compose.host.yaml config -q
	docker-compose -f docker/compose.yaml -f docker/compose.metrics.yaml config -q

compose-smoke: release
	FEDDISTILL_BIN=$(RELEASE_BIN) scripts/compose-smoke.sh

clean:
	rm -rf .build
