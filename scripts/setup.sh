#!/usr/bin/env bash
# Set up .venv with the course package and everything the tests and the course runner need.
# Safe to run again: it only installs what is missing. Used by scripts/course.sh and scripts/test.sh.
#
#   PYTHON=python3.12 bash scripts/setup.sh          # another interpreter (>= 3.10)
#   TORCH_SPEC="torch==2.13.0" bash scripts/setup.sh  # which torch to install when none is there
#   EXTRAS=dev bash scripts/setup.sh                  # fewer extras
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev,quant,eval,serve}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV with $("$PYTHON" --version)"
  if ! "$PYTHON" -m venv "$VENV"; then
    echo "'$PYTHON -m venv' failed. On Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 1
  fi
fi
PY="$VENV/bin/python"

# torch first, pinned: an unpinned `pip install torch` can pull a multi-GB CUDA build.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "==> installing $TORCH_SPEC"
  "$PY" -m pip install --disable-pip-version-check "$TORCH_SPEC"
fi

echo "==> installing codellama-course[$EXTRAS] (editable)"
"$PY" -m pip install --disable-pip-version-check -q -e ".[$EXTRAS]"
"$PY" -c "import codellama_course, torch, transformers; print('ready: torch', torch.__version__, '| transformers', transformers.__version__)"
