# On a fresh machine (Python >= 3.10 and a Rust toolchain), two commands do everything:
#
#   make demo    create .venv, build the wheel, install it, run the offline demo
#   make test    the same set-up, then every check: rustfmt, clippy, cargo test, mypy, the
#                stub check and pytest (run against the installed wheel, not the source tree)
#
# Other targets: `make bench` (every benchmark in benches/), `make wheel`, `make clean`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DIST := dist

.PHONY: demo test bench wheel install install-test rust-check typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "maturin>=1.9,<2"

# An abi3 wheel: one file for every CPython >= 3.10.
wheel: $(BIN)/python
	rm -rf $(DIST)
	$(BIN)/maturin build --release --out $(DIST)

# Dependencies from the wheel's own metadata, then the wheel itself over any older install of the
# same version (pip would otherwise keep a stale build of an unchanged version number).
install: wheel
	$(BIN)/python -m pip install --quiet $(DIST)/reasonrl-*.whl
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps $(DIST)/reasonrl-*.whl

install-test: install
	$(BIN)/python -m pip install --quiet "$$(ls $(DIST)/reasonrl-*.whl)[test]"

demo: install
	$(BIN)/reasonrl demo

rust-check:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	cargo test -p reasonrl-core --quiet

# The package ships py.typed: its own code and the benchmarks must type-check.
typecheck: install-test
	$(BIN)/python -m mypy python/reasonrl benches

test: install-test rust-check typecheck
	REASONRL_WHEEL_DIR=$(DIST) $(BIN)/python -m pytest

bench: install-test
	$(BIN)/python -m pip install --quiet "$$(ls $(DIST)/reasonrl-*.whl)[bench]"
	$(BIN)/python benches/bench_advantages.py
	$(BIN)/python benches/bench_math.py
	$(BIN)/python benches/bench_rewards.py
	$(BIN)/python benches/bench_code.py
	$(BIN)/python benches/bench_kernels.py
	$(BIN)/python benches/bench_trl.py
	$(BIN)/python benches/bench_scoring.py
	$(BIN)/python benches/bench_rollout.py
	$(BIN)/python benches/bench_gpu_step.py

clean:
	rm -rf $(DIST) target $(VENV)
