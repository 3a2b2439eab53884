# IARI: `make demo` runs the main job, `make test` passes the tests. Both do their own set-up.
SHELL := /bin/bash
CARGO ?= cargo
export ORT_DYLIB_PATH ?= $(CURDIR)/.ort/lib/libonnxruntime.so
IARI := target/release/iari

.PHONY: all ort services build demo test fmt-check clippy unit models bench clean test-tools bench-gpu \
	bench-instructions \
	bench-e2e drills browser workstation bench-web deny

all: build

# ONNX Runtime shared library from the pinned PyPI wheel (verified by SHA-256).
ort: .ort/lib/libonnxruntime.so
.ort/lib/libonnxruntime.so:
	scripts/fetch-ort.sh

services:
	scripts/services.sh

build: ort
	$(CARGO) build --release --locked

demo: build services
	$(IARI) demo

# The demo, then `iari serve` on its data with demo accounts whose one-time passwords are printed
# (docs/workstation.md). Runs until Ctrl-C.
workstation: build services
	scripts/workstation.sh $(IARI)

# Chromium and chromedriver from Debian's packages, for the browser test (tests/browser).
browser:
	scripts/install-browser.sh

# Worker end to end (publish → committed) for 5,000 captures next to `iari classify`.
bench-worker: build services
	scripts/bench-worker.sh 5000 $(IARI)

# End to end over MLLP to `iari lis-sim`: BENCH_N captures (default 5,000) for throughput, then
# 2,000 at 100/s for latency, next to `iari classify` (BENCHMARKS.md).
BENCH_N ?= 5000
bench-e2e: build services
	scripts/bench-e2e.sh $(BENCH_N) $(IARI)

# Fault drills: real worker, publisher and test LIS processes, one drill at a time.
drills: ort services
	$(CARGO) test --locked --test drills -- --test-threads=1

fmt-check:
	$(CARGO) fmt --all -- --check

# The whole workspace: the product and its test kit (tests/kit).
clippy:
	$(CARGO) clippy --locked --workspace --all-targets --test drills -- -D warnings

# Library, binary and integration tests of the workspace (the product and the test kit's own
# tests; no doc tests: neither crate has any), then one total line.
unit: ort services test-tools browser
	set -o pipefail; $(CARGO) test --locked --workspace --lib --bins --tests 2>&1 | tee .test-output.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "%d passed, %d failed\n", p, f}' .test-output.log

test: fmt-check clippy deny browser unit

# Licences, bans and sources of the dependency graph (deny.toml), offline. `cargo fetch` makes
# sure every locked crate (other platforms' too, which cargo metadata reads) is in the local
# cache: it needs the network only the first time.
CARGO_DENY_VERSION := 0.20.2
deny:
	@cargo-deny --version 2>/dev/null | grep -qx 'cargo-deny $(CARGO_DENY_VERSION)' || \
		nice -n 10 $(CARGO) install --locked cargo-deny --version $(CARGO_DENY_VERSION)
	$(CARGO) fetch --locked --quiet
	$(CARGO) deny --offline --locked --workspace check licenses bans sources

# Independent HL7 v2.5.1 validator (hl7apy) used by tests/deliver to check built messages.
test-tools: .venv-test/.hl7apy-1.3.5
.venv-test/.hl7apy-1.3.5:
	python3 -m venv .venv-test && .venv-test/bin/pip install -q hl7apy==1.3.5 && touch $@

# Regenerates the five demo models, manifest, golden files and model card (needs torch; not in CI).
models:
	test -x .venv-train/bin/python || python3 -m venv .venv-train
	.venv-train/bin/pip install -q -r onnx/train/requirements.txt
	cd onnx/train && ../../.venv-train/bin/python -m iari_train all --out ../models

clean:
	$(CARGO) clean

# Classification throughput (BENCHMARKS.md): the Rust harness, then the Python onnxruntime +
# Pillow reference on the same images. BENCH_PYTHON may point at an existing venv with
# onnxruntime 1.32, numpy and pillow; otherwise .venv-bench is created.
BENCH_IMAGES ?= onnx/samples
BENCH_SECONDS ?= 3
BENCH_PYTHON ?= .venv-bench/bin/python
# Instructions per image of the full path against its parts (callgrind; repeatable when timings
# are not): scripts/bench-instructions.sh.
bench-instructions: ort
	scripts/bench-instructions.sh

bench: ort
	BENCH_IMAGES=$(BENCH_IMAGES) BENCH_SECONDS=$(BENCH_SECONDS) $(CARGO) bench --locked --bench classify
	@test -x $(BENCH_PYTHON) || { python3 -m venv .venv-bench && \
		.venv-bench/bin/pip install -q onnxruntime==1.32.0 numpy pillow; }
	$(BENCH_PYTHON) scripts/bench_reference.py onnx/models/manifest.json $(BENCH_IMAGES) $(BENCH_SECONDS)

# The workstation's server time (worklist, decision page, image) over BENCH_WEB_N stored decisions
# (default 1,000,000, seeded once into the database iari_bench_web through the worker's write).
bench-web: services
	$(CARGO) bench --locked --bench web

# The classify bench on CUDA and CPU side by side (needs a GPU with driver >= 580; see the script).
bench-gpu:
	scripts/bench-gpu.sh

# Fuzz targets (docs/fuzzing.md), FUZZ_SECONDS each; not part of `make test`. cargo-fuzz needs
# nightly flags: RUSTC_BOOTSTRAP lets the stable toolchain take them. Own target directory.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := mllp_decoder ack_parser capture_event image_decode inline_image image_path \
	api_input hl7_escape
FUZZ_SEEDS_capture_event := tests/corpus/bad-input/bodies
FUZZ_SEEDS_image_decode := tests/corpus/bad-input/images
.PHONY: fuzz
fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))
fuzz-%:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	mkdir -p fuzz/corpus/$* fuzz/seeds/$*
	CARGO_TARGET_DIR=$(CURDIR)/fuzz/target RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $* \
		fuzz/corpus/$* fuzz/seeds/$* $(FUZZ_SEEDS_$*) -- -max_total_time=$(FUZZ_SECONDS)
