"""scripts/gpu_check.sh: it skips cleanly without CUDA, plans every notebook in each precision, and — run
against a stand-in Python that pretends to be a GPU machine — runs the jobs, passes the precision through,
reports failures and timeouts, and leaves at most 8 files (what the device tool brings back)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# A stand-in for `python` on a GPU machine: answers the script's probes and imitates each job.
STUB_PYTHON = r"""#!/usr/bin/env bash
if [ "$1" = -c ]; then
  case "$2" in
    *get_device_properties*) echo "Stub GPU 80GB | 79.1 GiB | compute capability 9.0 | torch 9.9 | CUDA 99" ;;
    *importlib.metadata*) echo "transformers 5.0.0 accelerate 1.0 bitsandbytes 0.50 tokenizers 0.22" ;;
  esac
  exit 0
fi
script=$1; shift
echo "ran $script $* with CODELLAMA_COURSE_MODEL=${CODELLAMA_COURSE_MODEL:-} CODELLAMA_COURSE_PRECISION=${CODELLAMA_COURSE_PRECISION:-}"
case "$script" in
  benchmarks/bench_gpu_quantization.py)
    while [ $# -gt 0 ]; do
      case "$1" in --json) echo '{"date": "2099-01-01"}' > "$2"; shift ;; --markdown) echo "| fp16 | 12.55 GiB |" > "$2"; shift ;; esac
      shift
    done ;;
  scripts/notebooks.py)
    out=${4:?}; mkdir -p "$out/notebooks"; cp "$2" "$out/notebooks/"
    case "$2:${CODELLAMA_COURSE_PRECISION:-}" in *01_b.ipynb:4bit) echo "ValueError: planted" >&2; exit 1 ;; esac ;;
  scripts/rehearsal.py)
    case "$*" in *13b*) exec sleep 60 ;; esac ;;
esac
"""


def _tree(tmp_path: Path, *, rehearsal: bool) -> Path:
    """A copy of the script in a checkout-shaped folder with two notebooks."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    (root / "notebooks").mkdir()
    shutil.copy(SCRIPT, root / "scripts" / "gpu_check.sh")
    for name in ("00_a.ipynb", "01_b.ipynb"):
        (root / "notebooks" / name).write_text("{}")
    if rehearsal:
        (root / "scripts" / "rehearsal.py").write_text("")
    stub = tmp_path / "python"
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    return root


def _run(root: Path, env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("GPU_CHECK_", "OUT"))}
    full.update(env)
    return subprocess.run(["bash", str(root / "scripts" / "gpu_check.sh"), *args], capture_output=True, text=True,
                          env=full, timeout=timeout)


def test_skips_cleanly_without_cuda(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the skip path is not taken here")
    out = tmp_path / "out"
    result = _run(ROOT, {"OUT": str(out)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and "skipped, no CUDA GPU here" in result.stdout
    assert result.stderr == ""
    assert not out.exists()  # nothing was run, nothing written


def test_skips_when_python_has_no_torch(tmp_path):
    root = _tree(tmp_path, rehearsal=False)
    no_torch = tmp_path / "python-without-torch"
    no_torch.write_text("#!/usr/bin/env bash\nexit 1\n")
    no_torch.chmod(0o755)
    result = _run(root, {"PYTHON": str(no_torch), "OUT": str(tmp_path / "out")})
    assert result.returncode == 0
    assert result.stdout.strip() == f"gpu_check: skipped, no CUDA GPU here ({no_torch} cannot import torch); nothing was run."


def test_dry_run_plans_every_notebook_in_each_precision():
    result = _run(ROOT, {}, "--dry-run")
    assert result.returncode == 0, result.stderr
    jobs = [line.split("\t") for line in result.stdout.splitlines()]
    assert jobs[0][0] == "bench" and "benchmarks/bench_gpu_quantization.py" in jobs[0][2]
    for precision in ("bf16", "fp16", "4bit"):
        for name in NOTEBOOKS:
            assert any(f"CODELLAMA_COURSE_PRECISION={precision}" in env and f"notebooks/{name} " in cmd
                       for _, env, cmd in jobs), (precision, name)
    assert any("benchmarks/bench_gpu_qlora.py" in cmd for _, _, cmd in jobs)
    if (ROOT / "scripts" / "rehearsal.py").exists():
        assert any("rehearsal.py --sizes 7b,13b,34b,70b" in cmd for _, _, cmd in jobs)
    else:
        assert jobs[-1][0] == "missing" and "rehearsal.py" in jobs[-1][2]


def test_bad_argument_is_refused():
    result = _run(ROOT, {}, "--fast")
    assert result.returncode == 2 and "unknown argument '--fast'" in result.stderr


def test_a_run_with_a_stub_gpu_reports_every_job(tmp_path):
    root = _tree(tmp_path, rehearsal=True)
    out, work = tmp_path / "out", tmp_path / "work"
    t0 = time.monotonic()
    result = _run(root, {"PYTHON": str(tmp_path / "python"), "OUT": str(out), "GPU_CHECK_WORK": str(work),
                         "GPU_CHECK_BUDGET_S": "15", "GPU_CHECK_JOBS": "3"})
    elapsed = time.monotonic() - t0
    log = (out / "gpu_check.log").read_text()
    assert result.returncode == 1, result.stdout + result.stderr  # one planted failure, one timeout
    assert elapsed < 40  # the 60-second stand-in was stopped by the budget
    assert "GPU: Stub GPU 80GB" in log and "gpu_check: 20" in log  # the GPU and the date
    status = {line.split()[0]: line.split()[1] for line in log.splitlines()
              if line.startswith(("bench ", "nano-", "standins-"))}
    assert status == {"bench": "ok", "standins-auto": "timeout", "standins-7b-fp16": "ok", "standins-7b-4bit": "ok",
                      "nano-bf16-00": "ok", "nano-bf16-01": "ok", "nano-fp16-00": "ok", "nano-fp16-01": "ok",
                      "nano-4bit-00": "ok", "nano-4bit-01": "FAILED(1)"}
    assert "summary: 9 passed, 2 not passed" in log  # + the QLoRA benchmark (qlora-7b-shape)
    assert "| fp16 | 12.55 GiB |" in log  # notebook 05's figures are in the log too
    # the precision reached each job
    job_log = (work / "logs" / "nano-fp16-01.log").read_text()
    assert "CODELLAMA_COURSE_MODEL=nano CODELLAMA_COURSE_PRECISION=fp16" in job_log
    assert "CODELLAMA_COURSE_PRECISION=4bit" in (work / "logs" / "standins-7b-4bit.log").read_text()
    # what comes back: a few plain files, no folders
    files = sorted(p.name for p in out.iterdir())
    assert files == ["bench_gpu_quantization.json", "bench_gpu_quantization.txt", "gpu_check.log",
                     "gpu_check_runs.tar.gz", "notebook05_gpu_results.md"]
    with tarfile.open(out / "gpu_check_runs.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.endswith("logs/nano-4bit-01.log") for n in names)
    assert any(n.endswith("nano-4bit-01_b/notebooks/01_b.ipynb") for n in names)  # the failed job's notebook
    assert not any("nano-bf16-01_b/notebooks" in n for n in names)  # not the ones that passed


def test_a_run_without_the_rehearsal_says_so_and_fails(tmp_path):
    root = _tree(tmp_path, rehearsal=False)
    out = tmp_path / "out"
    result = _run(root, {"PYTHON": str(tmp_path / "python"), "OUT": str(out), "GPU_CHECK_WORK": str(tmp_path / "w"),
                         "GPU_CHECK_PRECISIONS": "fp16"})
    log = (out / "gpu_check.log").read_text()
    assert result.returncode == 1
    assert "stand-ins: NOT RUN, scripts/rehearsal.py is not in this checkout" in log
    assert "summary: 4 passed, 1 not passed" in log


def test_missing_packages_stop_the_run_before_anything_runs(tmp_path):
    root = _tree(tmp_path, rehearsal=True)
    stub = tmp_path / "python"
    stub.write_text(STUB_PYTHON.replace('  esac\n  exit 0', '    *find_spec*) echo "nbclient bitsandbytes" ;;\n  esac\n  exit 0', 1))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notebook05_gpu_results.md").write_text("an earlier run's figures")
    result = _run(root, {"PYTHON": str(stub), "OUT": str(out), "GPU_CHECK_WORK": str(tmp_path / "w")})
    assert result.returncode == 1
    assert "lacks: nbclient bitsandbytes" in result.stderr and "Nothing was run." in result.stderr
    assert not (out / "gpu_check.log").exists()


def test_an_earlier_runs_figures_never_pass_for_this_ones(tmp_path):
    root = _tree(tmp_path, rehearsal=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notebook05_gpu_results.md").write_text("an earlier run's figures")
    stub = tmp_path / "python"
    stub.write_text(STUB_PYTHON.replace('echo "| fp16 | 12.55 GiB |" > "$2"', "true", 1))  # this bench writes no table
    _run(root, {"PYTHON": str(stub), "OUT": str(out), "GPU_CHECK_WORK": str(tmp_path / "w"),
                "GPU_CHECK_PRECISIONS": "fp16"})
    assert not (out / "notebook05_gpu_results.md").exists()
    assert "an earlier run's figures" not in (out / "gpu_check.log").read_text()


def test_bench_markdown_is_notebook05s_results_table():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu_quantization.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = {"date": "2099-01-02", "gpu": "NVIDIA H100 80GB HBM3", "gpu_memory_gib": 79.1, "compute_capability": "9.0",
            "model": "CodeLlama-7B architecture (6.74B parameters), random weights", "prompt_tokens": 32,
            "new_tokens": 128, "torch": "2.11.0", "transformers": "5.17.0", "bitsandbytes": "bitsandbytes 0.50.2",
            "results": [
                {"precision": "fp16", "gpu_memory_gib": 12.6, "estimate_gib": 12.55, "decode_tokens_per_s": 150.04,
                 "roofline_tokens_per_s": 253.5, "share_of_roofline": 0.5919},
                {"precision": "nf4", "gpu_memory_gib": 3.7, "estimate_gib": 3.6, "decode_tokens_per_s": 80.0,
                 "roofline_tokens_per_s": None, "share_of_roofline": None}]}
    text = bench.markdown_report(data)
    assert text.startswith("*Measured on 2099-01-02 on NVIDIA H100 80GB HBM3 (79.1 GiB, compute capability 9.0)")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows == ["| precision | GPU memory | estimate | decode | roofline | of roofline |",
                    "| fp16 | 12.60 GiB | 12.55 GiB | 150.0 tokens/s | 253.5 tokens/s | 59 % |",
                    "| nf4 | 3.70 GiB | 3.60 GiB | 80.0 tokens/s | n/a | n/a |"]
