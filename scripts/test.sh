#!/usr/bin/env bash
# Run every test: the unit tests and every notebook under nbval (offline, on the nano model).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -x -k memory
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# conftest.py also sets these (scripts/notebooks.py: QUIET_ENV, OFFLINE_ENV); here for anything started
# outside pytest. Tests run offline and on one thread unless you set these variables yourself.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}" \
       HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
exec .venv/bin/python -m pytest tests notebooks --nbval --nbval-current-env --durations=15 "$@"
