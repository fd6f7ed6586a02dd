# FedDistill — the two commands: `make demo` runs the main job, `make test` runs the tests.
# Both install missing Debian packages first (scripts/install-deps.sh; a fast no-op when present).

SWIFT ?= swift
RELEASE_BIN := .build/release/feddistill
DEBUG_BIN := .build/debug/feddistill

.PHONY: all deps build release test demo bench clean help

all: build

help:
	@echo "make demo     run the main job (see README)"
	@echo "make test     build and run the test suite"
	@echo "make bench    release build + feddistill bench"
	@echo "make release  release build of feddistill"

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build --product feddistill

release: deps
	$(SWIFT) build -c release --product feddistill

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# Until the federated simulation lands, the demo is the most complete real job: train the reference ConvNet on
# the embedded digits dataset and report its test accuracy.
demo: release
	@echo "demo: training ConvNet-3 on the embedded digits dataset (federated simulation not built yet)"
	$(RELEASE_BIN) datasets info digits
	$(RELEASE_BIN) train --dataset digits --epochs 20 --batch-size 64 --lr 0.05 --width 64 --seed 1

bench: release
	$(RELEASE_BIN) bench

clean:
	rm -rf .build
