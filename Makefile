# flatbed: the two commands are `make demo` and `make test` (see README.md).
GO      ?= go
BIN     := bin
MODULES := pkg events events/client/clientexample services/resolver services/ingester services/flattener services/thinpusher services/exporter services/relocator services/lazy services/notifier services/frontdoor cmd/flatbed e2e

.PHONY: all build demo test test-deps lint unit e2e fuzz deploy-check image bench clean

# How long each fuzz target runs in `make test` (bounded, seeded with the hostile corpora).
FUZZTIME ?= 15s
FUZZEXTRACT ?= 30s

all: build

build:
	cd cmd/flatbed && $(GO) build -o ../../$(BIN)/flatbed .

## demo: start a local registry with generated images and convert them (no internet needed)
demo: build
	$(BIN)/flatbed demo

## test: install what the tests need, then run every test of every module
test: test-deps lint
	CI=$${CI:-true} $(GO) test -timeout 40m -count=1 work
	$(MAKE) fuzz

## fuzz: run every fuzz target for FUZZTIME
fuzz:
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./wishlist
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./imageref
	cd pkg && $(GO) test -run='^$$' -fuzz=FuzzExtract -fuzztime=$(FUZZEXTRACT) -fuzzminimizetime=50x ./layer

test-deps:
	scripts/install-test-deps.sh

## lint: gofmt, go vet, and every module building on its own (GOWORK=off)
lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet work
	scripts/check-versions.sh
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) build ./... ) || exit 1; done

unit:
	$(GO) test -count=1 $$(for m in $(MODULES); do [ $$m = e2e ] || echo flatbed.dev/$$m/...; done)

e2e: test-deps
	cd e2e && CI=$${CI:-true} $(GO) test -count=1 -v .

## deploy-check: validate deploy/ (compose, kustomize, systemd units, NATS configs, dashboard)
deploy-check:
	scripts/validate-deploy.sh

image:
	docker build -f deploy/Dockerfile -t flatbed:dev .

## bench: flatbed vs skopeo+umoci and crane, and issue 9's goals: medians, ratios, peak RSS (BENCH_QUICK=1: small)
bench: build
	scripts/bench.sh

clean:
	rm -rf $(BIN)
