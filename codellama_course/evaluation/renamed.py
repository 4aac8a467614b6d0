"""Names of the evaluation package that were renamed: the old ones still work for one release, with a
FutureWarning that names the new one."""

from __future__ import annotations

import warnings

REMOVED_IN = "0.3.0"  # the package's own deprecation horizon (codellama_course.REMOVED_IN; a test checks they agree)

#: old name -> (module that holds it, new name)
RENAMED = {
    "PYTHON_STOP": ("problems", "HUMANEVAL_STOP_SEQUENCES"),  # beside generation.PYTHON_STOPS, it confused
    "JS_STOP": ("problems", "MULTIPL_E_JS_STOP_SEQUENCES"),
    "GenerationConfig": ("sampling", "SamplingConfig"),  # shadowed transformers.GenerationConfig
    "LocalBackend": ("sampling", "TransformersBackend"),  # beside playground.LocalBackend, it confused
}


def new_name(module: str, name: str) -> str:
    """The new name of ``module.name`` (warning that ``name`` goes), or AttributeError if it never was one."""
    if name not in RENAMED or module.rsplit(".", 1)[-1] not in ("evaluation", RENAMED[name][0]):
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new = RENAMED[name][1]
    warnings.warn(f"{module}.{name} is deprecated and goes in {REMOVED_IN}: use `from {module} import {new}`.",
                  FutureWarning, stacklevel=3)
    return new
