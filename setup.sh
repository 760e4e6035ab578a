#!/usr/bin/env bash
# Set WeakSeg up from nothing in ./.venv: the CPU build of PyTorch, then WeakSeg and its test tools.
# On a CUDA workstation set WEAKSEG_TORCH to the torch requirement you want (e.g. "torch==2.13.0"
# from the CUDA index); the default pins the CPU build, since a bare "torch" pulls several GB of
# CUDA packages.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
TORCH_REQUIREMENT=${WEAKSEG_TORCH:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "$TORCH_REQUIREMENT"
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/python -c "import torch, SimpleITK, monai, WeakSegLib; print('WeakSeg', WeakSegLib.__version__, '| torch', torch.__version__, '| CUDA', torch.cuda.is_available())"
