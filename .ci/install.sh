#!/usr/bin/env bash
# Installs nas_pruning and its requirements, lean: a CPU torch pinned first (an
# unpinned torch pulls GBs of CUDA packages), and syne-tune without xgboost
# (xgboost pulls a 469 MB NCCL library for features nas_pruning does not use).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install --quiet --progress-bar off "$@"; }

pip_install torch==2.13.0
pip_install "numpy<3" dill pandas typing_extensions sortedcontainers statsmodels scikit-learn tqdm psutil
pip_install --no-deps syne-tune==0.16.0
# The rest of setup.cfg's install_requires (syne-tune is already in place).
mapfile -t reqs < <("$PY" - <<'PYEOF'
import configparser
cfg = configparser.ConfigParser()
cfg.read("setup.cfg")
for line in cfg["options"]["install_requires"].split("\n"):
    line = line.strip()
    if line and not line.startswith("syne-tune"):
        print(line)
for line in cfg["options.extras_require"]["test"].split("\n"):
    if line.strip():
        print(line.strip())
PYEOF
)
pip_install "${reqs[@]}"
pip_install --no-deps -e .
"$PY" -c "import nas_pruning, syne_tune, torch; print('nas_pruning installed; torch', torch.__version__)"
