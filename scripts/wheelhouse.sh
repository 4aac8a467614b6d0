#!/usr/bin/env bash
# Build an offline wheelhouse for a classroom: every package the course needs to run its notebooks (every extra
# but dev, JupyterLab and ipykernel), the course's own wheel (nano inside), the CPU-only torch, and the student copies of
# the notebooks. Copy the folder to a USB stick or a LAN share; laptops install from it with no internet
# (docs/TEACHING.md, "Room install"):
#
#   bash scripts/wheelhouse.sh [DIR]                     # default DIR: build/wheelhouse
#   python3 -m venv course && course/bin/pip install --no-index --find-links DIR "codellama-course[quant,eval,serve,train]" jupyterlab
#
# The wheels are for this machine's Python version, OS and CPU: build on a machine like the laptops' (once per
# kind in a mixed room). PYTHON names another interpreter; TORCH_SPEC another torch (as in scripts/setup.sh).
# pip's cache is used, so a second build downloads nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${1:-build/wheelhouse}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
# every extra of pyproject.toml but the developers' one (dev)
EXTRAS=$("$PY" - <<'PYEOF'
import re
text = open("pyproject.toml", encoding="utf-8").read()
section = re.search(r"^\[project\.optional-dependencies\]\n(.*?)^\[", text, re.M | re.S).group(1)
print(",".join(name for name in re.findall(r"^([A-Za-z0-9_-]+)\s*=", section, re.M) if name != "dev"))
PYEOF
)
mkdir -p "$DIR"
rm -f "$DIR"/codellama_course-*.whl

# torch: pinned, and the CPU-only build (a laptop class has no NVIDIA GPUs to use; a CUDA build is GBs more)
TORCH_ARGS=()
while IFS= read -r arg; do TORCH_ARGS+=("$arg"); done < <("$PY" scripts/setup_checks.py torch-args --cpu)
echo "==> downloading ${TORCH_ARGS[*]}"
rm -f "$DIR"/torch-*.whl
"$PY" -m pip download --disable-pip-version-check -q --dest "$DIR" "${TORCH_ARGS[@]}"
TORCH_WHEEL=$(cd "$DIR" && ls torch-*.whl)

# the course's wheel (nano inside), built from a copy of this checkout: no build files left here, no clash with
# another build of the checkout running at the same time
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir "$TMP/src"
cp -r codellama_course pyproject.toml README.md LICENSE "$TMP/src/"
find "$TMP/src" -name __pycache__ -prune -exec rm -rf {} +
"$PY" -m pip wheel --disable-pip-version-check -q --no-deps --wheel-dir "$DIR" "$TMP/src"
COURSE_WHEEL=$(cd "$DIR" && ls codellama_course-*.whl)

# everything else, with exactly that course and the torch above (constraints: the course accepts newer torches,
# which pip would otherwise fetch with their CUDA libraries); sdists are built into wheels, so that laptops need
# no build tools
printf 'torch==%s\ncodellama-course==%s\n' "$(echo "$TORCH_WHEEL" | cut -d- -f2)" "$(echo "$COURSE_WHEEL" | cut -d- -f2)" \
  > "$TMP/pins.txt"
echo "==> building wheels for codellama-course[$EXTRAS], jupyterlab and ipykernel ($(paste -sd' ' "$TMP/pins.txt"))"
"$PY" -m pip wheel --disable-pip-version-check -q --prefer-binary --find-links "$DIR" -c "$TMP/pins.txt" \
  --wheel-dir "$DIR" "codellama-course[$EXTRAS]" jupyterlab ipykernel

# the notebooks as students get them (exercises without solutions)
"$PY" scripts/notebooks.py student --out "$DIR/notebooks" >/dev/null

"$PY" - "$DIR" "$EXTRAS" <<'PYEOF'
import platform, sys
from pathlib import Path
folder, extras = Path(sys.argv[1]), sys.argv[2]
wheels = sorted(folder.glob("*.whl"))
size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
target = f"CPython {sys.version_info[0]}.{sys.version_info[1]} on {platform.system()} {platform.machine()}"
print(f"==> {folder}: {len(wheels)} wheels, {size:.0f} MiB, for {target} (laptops need the same)")
print("Install on each laptop, no internet needed:")
print(f'  python3 -m venv course && course/bin/pip install --no-index --find-links {folder} '
      f'"codellama-course[{extras}]" jupyterlab')
print(f"  course/bin/jupyter lab {folder}/notebooks")
PYEOF
