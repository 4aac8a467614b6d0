"""Lesson tools: the tables, charts and measurement harnesses the notebooks use to *show* things.

The core library (``codellama_course``) never imports this package; these helpers import the core.
Everything here is importable from ``codellama_course.lessons`` (lazily, like the top level).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module in this package that defines it (each area adds its own lines)
_EXPORTS: dict[str, str] = {
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
