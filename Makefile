# Ferrite Edge. `make test` is the command README.md and CI run.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 30s
BENCHTIME ?= 1s
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/ferrite-edge/ferrite.Version=$(VERSION)

.PHONY: build test race short bench fuzz lint clean

## build: the ferrite binary in bin/
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ferrite ./cmd/ferrite

## test: go vet, then every test with the race detector (what CI runs),
## then the memory-pressure test without it (the race detector pins RSS)
test:
	$(GO) vet $(PKGS)
	$(GO) test -race $(PKGS)
	$(GO) test -run 'TestMemoryPressureLevels' ./test/

## race: the test suite with the race detector, uncached
race:
	$(GO) test -race -count=1 $(PKGS)

## short: the fast tests only (skips the slow ones)
short:
	$(GO) test -short $(PKGS)

## bench: every benchmark, with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

## fuzz: run every fuzz target for FUZZTIME each (go test runs one target at a time)
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

## lint: gofmt, go vet, and staticcheck when installed
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@if command -v staticcheck >/dev/null; then staticcheck $(PKGS); else echo "staticcheck not installed: skipped"; fi

clean:
	rm -rf bin/
