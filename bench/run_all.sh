#!/usr/bin/env bash
# The performance suite in one command: bash bench/run_all.sh [RUN_DIR]   (RUN_DIR: a finished demo run, default runs/demo)
# Each benchmark prints its table and writes JSON under bench/results/ (rl_vs_trl: RUN_DIR/bench_rl_vs_trl/).
# The TRL comparison needs bench/.venv-trl (bash bench/setup_trl.sh); the vLLM rows need `make install-vllm`.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/demo}
PY=.venv/bin/python
[ -x bench/.venv-trl/bin/python ] || bash bench/setup_trl.sh
echo "== threads and precision (bench/cpu_settings.py)";  $PY bench/cpu_settings.py
echo "== update step vs matmul peak (bench/train_step.py)"; $PY bench/train_step.py
echo "== rollout engines (bench/rollout_engines.py)";      $PY bench/rollout_engines.py
echo "== RL throughput vs TRL (bench/rl_vs_trl.py)";       bench/.venv-trl/bin/python bench/rl_vs_trl.py "$RUN"
echo "== time to accuracy vs TRL (about 35 min)";          bench/.venv-trl/bin/python bench/rl_vs_trl.py "$RUN" \
    --time-to-accuracy 0.5 --max-seconds 900 --rounds 1
echo "== scaling (bench/scaling.py)";                      $PY bench/scaling.py "$RUN"
