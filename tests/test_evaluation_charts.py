"""Charts and the blog's leaderboard table shipped with the package."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from codellama_course.evaluation import (  # noqa: E402
    leaderboard_source,
    leaderboard_table,
    pass_at_k_curve,
    plot_leaderboard,
    plot_outcome_strip,
    plot_pass_at_k,
)
from codellama_course.evaluation.charts import outcome, outcome_matrix  # noqa: E402

RESULTS = [
    {"task_id": "A", "result": "passed", "passed": True},
    {"task_id": "A", "result": "failed: AssertionError", "passed": False},
    {"task_id": "B", "result": "timed out", "passed": False},
    {"task_id": "B", "result": "failed: NameError: name 'x' is not defined", "passed": False},
    {"task_id": "C", "result": "failed: crashed (SIGSEGV)", "passed": False},
    {"task_id": "C", "result": "passed", "passed": True},
]


def test_leaderboard_table_is_the_blogs():
    table = {r["model"]: r for r in leaderboard_table()}
    assert len(table) == 16
    assert table["CodeLlaMa-34B-Python"]["humaneval_python"] == 53.29
    assert table["CodeLlaMa-7B"]["multipl_e_js"] == 31.8
    assert table["CodeLlaMa-7B"]["hub_id"] == "codellama/CodeLlama-7b-hf"
    src = leaderboard_source()
    assert src["url"] == "https://huggingface.co/blog/codellama" and len(src["commit"]) == 40


def test_outcomes():
    assert [outcome(r["result"]) for r in RESULTS] == ["passed", "wrong answer", "timed out", "error", "crashed",
                                                      "passed"]
    tasks, m = outcome_matrix(RESULTS)
    assert tasks == ["A", "B", "C"] and m.shape == (2, 3)


def test_pass_at_k_curve():
    ks, ys = pass_at_k_curve(RESULTS)
    assert list(ks) == [1, 2]
    assert ys[0] == pytest.approx((0.5 + 0 + 0.5) / 3) and ys[1] == pytest.approx(2 / 3)


def test_plots_draw():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1)
    plot_pass_at_k({"run": RESULTS}, ax=axes[0])
    plot_outcome_strip(RESULTS, ax=axes[1])
    plot_leaderboard({"ours": 12.5}, ax=axes[2])
    assert "ours" in [t.get_text() for t in axes[2].get_yticklabels()]
    plt.close(fig)
