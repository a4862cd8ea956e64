# The kiosk's everyday commands. `make demo` and `make test` are the quick start.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
CMDS     := kioskd kioskctl kiosk-ingest kiosk-demo kiosk-fleetsim pn532-smoke
CROSS    := linux/arm/6 linux/arm/7 linux/arm64

.PHONY: all build demo test test-short bench fleet-bench central-bench cross fuzz vet lint clean

all: build

build:
	@mkdir -p bin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(CMDS))

# The kiosk with a simulated reader and a terminal display, an embedded MQTT
# broker and the reference ingest: nothing but Go.
demo: build
	./bin/kiosk-demo

vet:
	$(GO) vet ./...

# staticcheck, pinned, run from the module proxy (not part of make test).
STATICCHECK_VERSION ?= v0.7.0
lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Every test. End-to-end tests spawn their own Mosquitto on free ports;
# then the race detector over the packages without paho (whose own internals
# race between Connect and its outgoing worker).
RACE_PKGS := ./clock/... ./device/... ./display/... ./reader/... ./protocol/... ./kiosk/control ./queue ./internal/ratelog
test: vet
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

test-short:
	$(GO) test -short -count=1 ./...

# Benchmarks with their figures printed: the kiosk as a whole (a table:
# tap latency, drain beside a raw request→reply, memory, start-up), then the
# reader, the screens, the tap path with an SSD1306 wired and offline, and
# tap to first feedback beside the fleet simulator's 1 000 kiosks (minutes).
bench: build
	$(GO) run ./cmd/kiosk-bench
	$(GO) test -run '^$$' -bench . -benchtime 200x ./reader/pn532/
	$(GO) test -run '^$$' -bench . ./display/render/ ./display/oled/
	$(GO) test -run '^$$' -bench Tap -benchtime 1000x ./kiosk/
	$(GO) test -run '^$$' -bench DecodeResult ./protocol/
	$(GO) test -run '^$$' -bench TapOnlineFleet -benchtime 1000x -timeout 40m ./internal/fleetsim/

# The fleet at scale (minutes): 1000 kiosks × 1 tap every 2 s for 60 s, then
# the same load through a 60 s broker outage (recoverS: backlog drained).
fleet-bench: build
	$(GO) run ./cmd/kiosk-fleetsim -kiosks 1000 -rate 0.5 -duration 60s
	$(GO) run ./cmd/kiosk-fleetsim -kiosks 1000 -rate 0.5 -duration 100s -chaos-outage-at 10s -chaos-broker-down 60s

# Central's figures: a Status change of 1 000 kiosks through the registry
# (per ledger), a /metrics scrape of 1 000 kiosks, the reports over 1 000 000
# ledger rows (SQLite and PostgreSQL), and the ingest's checkin rate with
# 1 000 kiosks' Status flowing, registry off and on. Then the ledger per
# dialect beside a bare batched insert of the same rows with the same
# durability, measured in the same run (checkins/s, bare-rows/s, ×bare),
# and the ingest measured from outside over Mosquitto (200 kiosks, 1 024
# unanswered; PostgreSQL with one and two instances sharing the checkins),
# with the processor time per 1 000 checkins of the Go side, PostgreSQL and
# the broker: on a shared machine the rate tells of the other users too.
# Last, a burst of packets written to the broker's socket plainly and
# gathered (internal/mqttconn), processor time per packet.
central-bench:
	$(GO) test -run '^$$' -bench Flush1000 -benchtime 10x ./fleet/
	$(GO) test -run '^$$' -bench ScrapeThousandKiosks -benchtime 50x ./centralweb/
	$(GO) test -run '^$$' -bench Report -benchtime 1x -timeout 30m ./report/
	$(GO) test -run '^$$' -bench 'ServiceFleet' -benchtime 10000x ./ingest/
	uptime
	$(GO) test -run '^$$' -bench 'IngestVsBare' -benchtime 20480x ./ingest/
	$(GO) test -run '^$$' -bench 'IngestMQTT' -benchtime 20000x ./ingest/
	$(GO) test -run '^$$' -bench 'Write' -benchtime 200000x ./internal/mqttconn/
	$(GO) test -run '^$$' -bench 'DecodeCheckin' ./protocol/

cross:
	@mkdir -p dist
	@for t in $(CROSS); do \
	  os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%/*}; arm=$${rest#*/}; \
	  suffix=$$arch; env="GOOS=$$os GOARCH=$$arch"; \
	  if [ "$$arch" = arm ]; then suffix=armv$$arm; env="$$env GOARM=$$arm"; fi; \
	  for c in kioskd kioskctl kiosk-ingest pn532-smoke; do \
	    echo "dist/$$c-linux-$$suffix"; \
	    env $$env CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/$$c-linux-$$suffix ./cmd/$$c || exit 1; \
	  done; \
	done

# Fuzz every decoder of outside bytes for a while (FUZZTIME each).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeResult$$' -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzResultEncode -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzDecodeCheckinFast -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzDecodeResultFast -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzValidIDs -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzDecodeConfig -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzDecodeRenewRequest -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzDecodeRenewReply -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./reader/pn532/frame
	$(GO) test -run '^$$' -fuzz FuzzParseInList -fuzztime $(FUZZTIME) ./reader/pn532/frame
	$(GO) test -run '^$$' -fuzz FuzzParseFirmware -fuzztime $(FUZZTIME) ./reader/pn532/frame
	$(GO) test -run '^$$' -fuzz FuzzDriverReplies -fuzztime $(FUZZTIME) ./reader/pn532
	$(GO) test -run '^$$' -fuzz FuzzCheck -fuzztime $(FUZZTIME) ./ingest
	$(GO) test -run '^$$' -fuzz 'FuzzProcess$$' -fuzztime $(FUZZTIME) ./ingest
	$(GO) test -run '^$$' -fuzz FuzzRender -fuzztime $(FUZZTIME) ./display/render

clean:
	rm -rf bin dist

# Debian packages in dist/: kioskd for the kiosk, armhf (GOARM=6, runs on
# every Pi), arm64 and amd64 (x86 kiosks, make vm-test); kiosk-ingest for
# central, amd64 and arm64. nfpm runs as a pinned Go tool: nothing is
# downloaded but Go modules (nfpm v2.46+ needs modules the Go proxy does
# not serve).
NFPM_VERSION ?= v2.45.2
NFPM         ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
DEB_ARCHS    ?= armhf arm64 amd64
INGEST_DEB_ARCHS ?= amd64 arm64
DEB_VERSION  ?= $(shell packaging/version.sh)
DEB_LDFLAGS  := -s -w -X main.version=$(DEB_VERSION)

.PHONY: package package-check vm-test

package:
	@mkdir -p dist
	@export SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s); \
	for a in $(DEB_ARCHS); do \
	  case $$a in armhf) env="GOARCH=arm GOARM=6";; arm64) env="GOARCH=arm64";; amd64) env="GOARCH=amd64";; *) echo "no GOARCH for $$a"; exit 1;; esac; \
	  mkdir -p dist/$$a; \
	  echo "dist/$$a/kioskd (kioskctl is a symlink to it: one binary on the kiosk)"; \
	  env GOOS=linux $$env CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(DEB_LDFLAGS)' -o dist/$$a/kioskd ./cmd/kioskd || exit 1; \
	  ln -sf kioskd dist/$$a/kioskctl; \
	  rm -f dist/kioskd_*_$$a.deb; \
	  DEB_ARCH=$$a DEB_VERSION=$(DEB_VERSION) BIN_DIR=dist/$$a \
	    $(NFPM) package --config packaging/nfpm.yaml --packager deb --target dist/ || exit 1; \
	done; \
	for a in $(INGEST_DEB_ARCHS); do \
	  case $$a in amd64) env="GOARCH=amd64";; arm64) env="GOARCH=arm64";; *) echo "no GOARCH for $$a"; exit 1;; esac; \
	  mkdir -p dist/$$a; \
	  echo "dist/$$a/kiosk-ingest"; \
	  env GOOS=linux $$env CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(DEB_LDFLAGS)' -o dist/$$a/kiosk-ingest ./cmd/kiosk-ingest || exit 1; \
	  rm -f dist/kiosk-ingest_*_$$a.deb; \
	  DEB_ARCH=$$a DEB_VERSION=$(DEB_VERSION) BIN_DIR=dist/$$a \
	    $(NFPM) package --config packaging/kiosk-ingest.yaml --packager deb --target dist/ || exit 1; \
	done

# What CI runs on the packages (kioskd's and kiosk-ingest's): units verified
# and their exposure scored, binaries started (under qemu-user), package
# contents listed, installed and purged in a throwaway root. Installs its
# tools from Debian when missing.
package-check: package
	packaging/check.sh dist

# kioskd's amd64 package (VM_ARCH=arm64: arm64) on a real Debian bookworm
# under real systemd, in qemu (software emulation: about 20 minutes on 2 cores):
# READY, STATUS=, the exposure score, the hardening, the watchdog; VM_CUTS
# (10) power cuts on a disk with a volatile write cache plus a control run
# that must lose taps; a clock that lies; an upgrade under load and a
# purge. Needs root; installs mmdebstrap, qemu, nbdkit, chrony and
# Mosquitto from Debian when missing; the image is cached in
# test/vm/.cache. Not part of make test; .ci/run runs it (amd64).
vm-test:
	test/vm/run.sh
