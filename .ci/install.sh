#!/usr/bin/env bash
# Installs nas_pruning and its requirements, lean: a CPU torch pinned first (an
# unpinned torch pulls GBs of CUDA packages), and syne-tune without xgboost
# (xgboost pulls a 469 MB NCCL library for features nas_pruning does not use).
# Arguments name optional extras of setup.cfg to add, e.g. `bash .ci/install.sh ray`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install --quiet --progress-bar off "$@"; }

pip_install torch==2.13.0
pip_install "numpy<3" dill pandas typing_extensions sortedcontainers statsmodels scikit-learn tqdm psutil
pip_install --no-deps syne-tune==0.16.0
# The rest of setup.cfg's install_requires (syne-tune is already in place).
mapfile -t reqs < <("$PY" - test "$@" <<'PYEOF'
import configparser
import sys

cfg = configparser.ConfigParser()
cfg.read("setup.cfg")
lines = cfg["options"]["install_requires"].split("\n")
for extra in sys.argv[1:]:
    if extra not in cfg["options.extras_require"]:
        sys.exit(f"unknown extra {extra!r}; setup.cfg has {sorted(cfg['options.extras_require'])}")
    lines += cfg["options.extras_require"][extra].split("\n")
for line in lines:
    line = line.strip()
    if line and not line.startswith("syne-tune"):
        print(line)
PYEOF
)
pip_install "${reqs[@]}"
pip_install --no-deps -e .
"$PY" -c "import nas_pruning, syne_tune, torch; print('nas_pruning installed; torch', torch.__version__)"
