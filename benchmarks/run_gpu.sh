#!/usr/bin/env bash
# Run the scale benchmark on CUDA in one go, for a machine with an NVIDIA GPU.
# Prints the Markdown table for benchmarks/RESULTS.md and the GPU's name.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'CUDA is not available to torch'; print('torch', torch.__version__, torch.version.cuda)"
"$PYTHON" -m benchmarks.scale --device cuda --samples 50000
