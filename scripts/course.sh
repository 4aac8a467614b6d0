#!/usr/bin/env bash
# Run the whole course offline on the nano model: every notebook is executed from a clean state and
# written to build/notebooks/ (executed .ipynb) and build/html/ (open build/html/index.html), with a slide deck
# of each notebook's main path in build/slides/NN_x.slides.html (reveal.js; see docs/TEACHING.md).
# Set CODELLAMA_COURSE_MODEL to run it on another model (a GPU and the Hub are then needed).
# It also builds the course package as a wheel, build/dist/codellama_course-*.whl: a teacher can hand it out,
# and in Colab the setup cell installs it when CODELLAMA_COURSE_SOURCE names the uploaded file (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
rm -f build/dist/codellama_course-*.whl
.venv/bin/python -m pip wheel --disable-pip-version-check -q --no-deps -w build/dist .
echo "==> wheel: $(ls build/dist/codellama_course-*.whl)"
exec .venv/bin/python scripts/notebooks.py course --out build "$@"
