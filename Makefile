# Outpost build entry points. Every target runs from a fresh clone: the
# scripts install what they need (Docker Engine, Debian packages) themselves.

GO        ?= go
FUZZTIME  ?= 30s
DURATION  ?= 30m
SOAK_CYCLE ?= 0s
BIN       := bin
CMDS      := $(notdir $(wildcard cmd/*))

.PHONY: all build test test-short vet lint run images bench soak fuzz clean

all: build

## build: compile every binary in cmd/ into bin/
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...

## test: the whole suite (what CI runs through .ci/run)
test:
	scripts/test.sh

## test-short: unit tests only (-short skips Docker and long end-to-end tests)
test-short:
	$(GO) test -short -count=1 ./...

## vet, lint: static checks (also part of `make test`)
vet:
	$(GO) vet ./...
lint: vet
	scripts/check-docs.sh

## run: the demo: fake IoT Hub + an edge device (agent, edge hub, sensor, filter); RUNTIME=docker for containers
run: build
	scripts/run-demo.sh

## images: FROM scratch container images of the binaries (needs Docker; installed when absent)
images:
	scripts/images.sh

## bench: the hub side by side with Mosquitto; writes docs/benchmarks.md and .png
##        (BENCH_RUNS=N runs per case, BENCH_QUICK=1 for a short run)
bench:
	BENCH_COMMAND="make bench" GO=$(GO) scripts/bench.sh

## soak: steady traffic through the edge hub with network cuts and hub restarts for
##       DURATION (default 30m; SOAK_CYCLE=5m one cut and one restart per cycle);
##       samples and summary in .outpost/soak
soak:
	$(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./cmd/edgehub \
		-args -soak.duration=$(DURATION) -soak.cycle=$(SOAK_CYCLE) -soak.sample=5s -soak.out=.outpost/soak

## fuzz: run every fuzz target for FUZZTIME each (default 30s)
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

clean:
	rm -rf $(BIN) .outpost
