#!/usr/bin/env bash
# Benchmark-only environment for bench/rl_vs_trl.py: mirrorl plus Hugging Face TRL in bench/.venv-trl.
# TRL is not a dependency of mirrorl; this keeps it out of the project's own .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=bench/.venv-trl
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.13.0          # the same torch as the project (CPU wheel on CPU machines)
"$VENV/bin/pip" install -q -e ".[dev]" "trl>=1.16,<2"
"$VENV/bin/python" -c "import trl, transformers, torch; print('trl', trl.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)"
