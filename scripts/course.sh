#!/usr/bin/env bash
# Run the whole course offline on the nano model: every notebook is executed from a clean state and
# written to build/notebooks/ (executed .ipynb) and build/html/ (open build/html/index.html).
# Set CODELLAMA_COURSE_MODEL to run it on another model (a GPU and the Hub are then needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/notebooks.py course --out build "$@"
