#!/usr/bin/env bash
# Whenever a GPU is at hand: the CUDA tests and the forward and training benchmarks on it.
# Under five minutes on one GPU. Run from the repository root, with initbench installed:
#   bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print('torch', torch.__version__, 'on', torch.cuda.get_device_name())"
python -m pytest -q -m cuda tests/test_cuda.py
python bench/run.py forward train --device cuda --repeats 3
