# mnist-mlp: two commands do all the set-up on a fresh Debian/Ubuntu machine
# with Rust installed:  `make train`  and  `make test`.

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
BIN  := target/release/mnist-mlp

.PHONY: deps build train test bench fetch info lint clean

# The system OpenBLAS (and pkg-config to find it), installed only when missing.
deps:
	@if ! (pkg-config --exists openblas 2>/dev/null || ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so '); then \
	  echo "installing libopenblas-dev and pkg-config"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev pkg-config; \
	fi

build: deps
	cargo build --release

# Trains the default network on MNIST (downloaded into data/mnist on first use,
# or read from $$MNIST_DIR).
train: build
	$(BIN) train

fetch: build
	$(BIN) fetch

info: build
	$(BIN) info

# The whole test suite, optimized (numeric code is 10-50x slower in debug).
# Set MNIST_DIR to run the MNIST end-to-end tests on the real data.
# Then the unit tests, the reader's property tests and the fuzz-corpus replay
# once more in the test profile (optimized too, but with overflow checks and
# debug assertions on, which `--release` turns off).
test: deps
	cargo test --release
	cargo test --lib --test idx_props --test fuzz_corpus

bench: deps
	cargo bench

lint: deps
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings

clean:
	cargo clean
