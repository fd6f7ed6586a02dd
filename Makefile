# FedDistill — the two commands: `make demo` runs the main job, `make test` runs the tests.
# Both install missing Debian packages first (scripts/install-deps.sh; a fast no-op when present).

SWIFT ?= swift
RELEASE_BIN := .build/release/feddistill
DEBUG_BIN := .build/debug/feddistill

.PHONY: all deps build release test demo bench fuzz clean help

all: build

help:
	@echo "make demo     run the main job (see README)"
	@echo "make test     build and run the test suite"
	@echo "make bench    release build + feddistill bench"
	@echo "make release  release build of feddistill"
	@echo "make fuzz     30-second libFuzzer run of the envelope parser (FUZZ_SECONDS=N)"

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build --product feddistill

release: deps
	$(SWIFT) build -c release --product feddistill

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The main job: a federated round on the embedded digits dataset — 4 node processes distill Dirichlet(0.5)
# partitions with DM (IPC 10) and submit sealed sets over mutual TLS; the coordinator merges them by distribution
# matching and evaluates the global model against the union and centralized-DM baselines.
demo: release
	$(RELEASE_BIN) simulate --dataset digits --nodes 4 --partition dirichlet:0.5 --ipc 10 --iterations 200 \
		--merge-iterations 200 --out demo-global.safetensors --json demo-result.json

bench: release
	$(RELEASE_BIN) bench
	$(RELEASE_BIN) bench --protocol

FUZZ_SECONDS ?= 30
fuzz: deps
	scripts/fuzz-envelope.sh $(FUZZ_SECONDS)

clean:
	rm -rf .build
