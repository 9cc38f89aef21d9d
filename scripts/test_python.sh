#!/usr/bin/env bash
# The Python package's tests: builds the wheel from crates/python with pip
# (maturin as the build backend, reusing target/ so the Rust side does not
# rebuild the world), installs it into a fresh venv, checks the type stubs
# against the module (mypy's stubtest) and runs the pytest suite against runs
# the release binary writes, including examples/notebook.ipynb run headless
# (nbclient) on the demo model. Needs target/release/aligntds and models/
# (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
pip() { "$venv/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install pytest pyarrow polars pandas datasets tqdm mypy nbclient nbformat ipykernel matplotlib
start=$(date +%s)
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" pip install ./crates/python
echo "built and installed the wheel in $(( $(date +%s) - start )) s"
(cd "$(dirname "$venv")" && "$venv/bin/python" -m mypy --config-file "$OLDPWD/crates/python/pyproject.toml" -p aligntds)
"$venv/bin/python" -m mypy.stubtest aligntds --mypy-config-file crates/python/pyproject.toml --allowlist crates/python/stubtest-allowlist.txt
"$venv/bin/python" -m pytest -q crates/python/tests
