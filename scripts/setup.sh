#!/usr/bin/env bash
# Set up .venv with the course package and everything the tests and the course runner need.
# Safe to run again: it only installs what is missing. Used by scripts/course.sh and scripts/test.sh.
#
#   PYTHON=python3.12 bash scripts/setup.sh          # another interpreter (>= 3.10)
#   TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" bash scripts/setup.sh
#                                                     # which torch to install when none is there (pip arguments)
#   EXTRAS=dev bash scripts/setup.sh                  # fewer extras
# Without TORCH_SPEC: torch==2.13.0, the CPU-only build where there is no NVIDIA GPU (scripts/setup_checks.py).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev,quant,eval,serve,train}

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV with $("$PYTHON" --version)"
  if ! "$PYTHON" -m venv "$VENV"; then
    echo "'$PYTHON -m venv' failed. On Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 1
  fi
fi
PY="$VENV/bin/python"

# torch first, pinned, and without a GPU the CPU-only build: an unpinned `pip install torch` can pull a
# multi-GB CUDA build. scripts/setup_checks.py decides (and says why) from TORCH_SPEC and this machine.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  TORCH_ARGS=()
  while IFS= read -r arg; do TORCH_ARGS+=("$arg"); done < <("$PY" scripts/setup_checks.py torch-args)
  if [ "${#TORCH_ARGS[@]}" -eq 0 ]; then
    echo "scripts/setup_checks.py gave no torch to install" >&2
    exit 1
  fi
  echo "==> installing ${TORCH_ARGS[*]}"
  "$PY" -m pip install --disable-pip-version-check "${TORCH_ARGS[@]}"
fi

echo "==> installing codellama-course[$EXTRAS] (editable)"
"$PY" -m pip install --disable-pip-version-check -q -e ".[$EXTRAS]"
"$PY" -c "import codellama_course, torch, transformers; print('ready: torch', torch.__version__, '| transformers', transformers.__version__)"
# Optional system packages: the course and tests run without them (their tests skip and say why).
"$PY" scripts/setup_checks.py optional
