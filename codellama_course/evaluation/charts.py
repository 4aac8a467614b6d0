"""Charts and data for notebook 06: pass@k against k, a per-task outcome strip, and our run
beside the Code Llama blog's leaderboard table (shipped as package data, source recorded in it)."""

from __future__ import annotations

import json
from collections import defaultdict
from importlib import resources
from typing import Mapping, Sequence

import numpy as np

from .passk import pass_at_k

__all__ = ["leaderboard_table", "leaderboard_source", "pass_at_k_curve", "outcome", "outcome_matrix",
           "plot_pass_at_k", "plot_outcome_strip", "plot_leaderboard", "OUTCOMES"]


def _leaderboard() -> dict:
    ref = resources.files("codellama_course.evaluation") / "data" / "codellama_blog_leaderboard.json"
    return json.loads(ref.read_text(encoding="utf-8"))


def leaderboard_table() -> list[dict]:
    """The Code Llama blog's table (pass@1 in %): ``model, hub_id, humaneval_python, multipl_e_js, ...``.

    Taught in: notebook 06 §4.
    """
    return [dict(r) for r in _leaderboard()["rows"]]


def leaderboard_source() -> dict:
    """Where the table comes from (URL, blog repository file and commit, evaluation settings).

    Taught in: notebook 06 §4.
    """
    return dict(_leaderboard()["source"])


# ----------------------------------------------------------------------------- data helpers
def _counts(results: Sequence[Mapping], key: str) -> list[tuple[int, int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        c = counts[r["task_id"]]
        c[0] += 1
        c[1] += bool(r[key])
    return [tuple(v) for v in counts.values()]


def pass_at_k_curve(results: Sequence[Mapping], key: str = "passed", ks: Sequence[int] | None = None):
    """(ks, mean pass@k) for k = 1 .. min samples per task (or the given ks that are <= it)."""
    counts = _counts(results, key)
    n_min = min(n for n, _ in counts)
    ks = [k for k in (ks or range(1, n_min + 1)) if k <= n_min]
    return np.array(ks), np.array([np.mean([pass_at_k(n, c, k) for n, c in counts]) for k in ks])


#: outcome categories of a result string, in legend order, with their colours
OUTCOMES = {
    "passed": "#2ca02c",
    "wrong answer": "#ff7f0e",
    "error": "#d62728",
    "timed out": "#9467bd",
    "crashed": "#000000",
}


def outcome(result: str) -> str:
    """Category of a verdict: passed, wrong answer (AssertionError), error, timed out, crashed.

    Taught in: notebook 06 §3.
    """
    if result == "passed":
        return "passed"
    if result == "timed out":
        return "timed out"
    if "crashed" in result or "died" in result:
        return "crashed"
    if result.startswith("failed: AssertionError"):
        return "wrong answer"
    return "error"


def outcome_matrix(results: Sequence[Mapping], key: str = "result"):
    """(task ids, matrix samples x tasks of category indices into OUTCOMES; -1 where missing)."""
    by_task: dict[str, list[str]] = defaultdict(list)
    for r in results:
        by_task[r["task_id"]].append(outcome(r[key]))
    tasks = list(by_task)
    n = max(len(v) for v in by_task.values())
    names = list(OUTCOMES)
    m = np.full((n, len(tasks)), -1)
    for j, t in enumerate(tasks):
        for i, o in enumerate(by_task[t]):
            m[i, j] = names.index(o)
    return tasks, m


# ----------------------------------------------------------------------------- plots
def plot_pass_at_k(runs, ax=None, ks: Sequence[int] | None = None, key: str = "passed"):
    """pass@k against k for one run (a list of results) or several (``{label: results}``).

    Taught in: notebook 06 §3.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    if not isinstance(runs, Mapping):
        runs = {"pass@k": runs}
    for label, results in runs.items():
        x, y = pass_at_k_curve(results, key=key, ks=ks)
        ax.plot(x, 100 * y, marker="o", label=label)
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    if len(x) <= 12:
        ax.set_xticks(list(x))
    ax.set_xlabel("k (samples allowed per task)")
    ax.set_ylabel("pass@k (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title("pass@k: unbiased estimate from n samples per task")
    return ax


def plot_outcome_strip(results: Sequence[Mapping], ax=None, key: str = "result", title: str | None = None):
    """One column per task, one row per sample, coloured by outcome (passed, wrong answer, ...).

    Taught in: notebook 06 §3.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    tasks, m = outcome_matrix(results, key=key)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, len(tasks) * 0.06), 1.2 + 0.25 * m.shape[0]))
    colors = list(OUTCOMES.values())
    masked = np.ma.masked_less(m, 0)
    ax.imshow(masked, aspect="auto", interpolation="nearest", cmap=ListedColormap(colors), vmin=0,
              vmax=len(colors) - 1)
    ax.set_yticks(range(m.shape[0]))
    ax.set_yticklabels([f"sample {i + 1}" for i in range(m.shape[0])] if m.shape[0] <= 10 else [""] * m.shape[0])
    ax.set_xlabel(f"task ({len(tasks)} tasks)")
    present = sorted({int(v) for v in m.flat if v >= 0})
    names = list(OUTCOMES)
    ax.legend(handles=[Patch(color=colors[i], label=names[i]) for i in present], loc="upper center",
              bbox_to_anchor=(0.5, -0.35 if m.shape[0] < 4 else -0.12), ncol=len(present), frameon=False)
    ax.set_title(title or "outcome of every sample, task by task")
    return ax


def plot_leaderboard(ours: Mapping[str, float] | None = None, column: str = "humaneval_python", ax=None,
                     models: Sequence[str] | None = None):
    """The blog's table as bars (pass@1 %), with our runs (``{label: pass@1 in %}``) highlighted.

    Taught in: notebook 06 deep dive "reproducing a row on a GPU".
    """
    import matplotlib.pyplot as plt

    table = leaderboard_table()
    if models is not None:
        table = [r for r in table if r["model"] in models]
    bars = [(r["model"], r[column], "#1f77b4" if r["model"].startswith("CodeLlaMa") else "#aaaaaa") for r in table]
    bars += [(label, value, "#d62728") for label, value in (ours or {}).items()]
    bars.sort(key=lambda b: b[1])
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.32 * len(bars) + 1))
    ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    for i, (_, value, _) in enumerate(bars):
        ax.text(value + 0.5, i, f"{value:.1f}", va="center", fontsize=8)
    ax.set_xlabel(_leaderboard()["columns"].get(column, column))
    ax.set_title("Code Llama blog's leaderboard table" + (" and our runs (red)" if ours else ""))
    ax.set_xlim(0, max(b[1] for b in bars) * 1.12 + 1)
    return ax
