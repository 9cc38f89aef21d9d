#!/usr/bin/env bash
# One-time setup: builds the aligntds binary (target/release/aligntds).
# Needs only a Rust toolchain (stable, 1.85 or newer) and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "error: cargo not found; install Rust from https://rustup.rs and re-run" >&2
  exit 2
fi
cargo build --release --locked
echo "built target/release/aligntds"
