"""Lesson tools: the tables, charts and measurement harnesses the notebooks use to *show* things.

The core library (``codellama_course``) never imports this package; these helpers import the core.
Everything here is importable from ``codellama_course.lessons`` (lazily, like the top level).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module in this package that defines it (each area adds its own lines)
_EXPORTS: dict[str, str] = {
    # serving (notebook 07 §4)
    "ENDPOINT_GPUS": "deployment",
    "PROJECT_STATUS": "deployment",
    "RECIPES": "deployment",
    # tokens and the blog
    "inspect_tokenizer": "tokens",
    "compare_ids": "tokens",
    "compare_infill": "tokens",
    "compare_chat": "tokens",
    "blog_output": "blog",
    # memory, fit and precision
    "GPU": "fit",
    "GPUS": "fit",
    "get_gpu": "fit",
    "fit_verdict": "fit",
    "FamilyFit": "fit",
    "family_fit": "fit",
    "plot_family_fit": "fit",
    "plot_fit_chart": "fit",
    "bytes_read_per_token": "fit",
    "roofline_tokens_per_s": "fit",
    "roofline_table": "fit",
    "MemoryTable": "fit",
    "memory_table": "fit",
    "plot_kv_cache": "fit",
    "measure_precisions": "precisions",
    "PrecisionResult": "precisions",
    "PrecisionTable": "precisions",
    # fine-tuning
    "InterruptAt": "finetuning",
    "measure_training_peak": "finetuning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'codellama_course.lessons' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
