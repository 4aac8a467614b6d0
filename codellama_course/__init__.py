"""codellama-course: the helpers behind the Code Llama notebooks.

The core names a user needs are importable from the top level (``codellama_course.load``; README, "The
library", lists them with the notebook section that teaches each). Plumbing stays in its submodule; the
tables, charts and measurement harnesses only the lessons use are in ``codellama_course.lessons``.
Submodules are imported lazily, so ``import codellama_course`` stays cheap and does not import torch
until a helper that needs it is used.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from ._version import __version__

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # the family and memory (notebooks 00-01)
    "variants": "registry",
    "get_variant": "registry",
    "estimate_memory": "memory",
    "count_parameters": "memory",
    "nano_dir": "registry",
    # loading and the one model switch
    "load": "loading",
    "resolve_model": "loading",
    "auto_precision": "memory",
    "quantization_config": "quantization",
    "preflight": "preflight",
    # prompts, exact to the token (notebooks 03-04)
    "infill_ids": "prompts",
    "chat_prompt": "prompts",
    "chat_ids": "prompts",
    "decode_infill": "prompts",
    "chat_stop_ids": "prompts",
    # generation (notebooks 02-04)
    "complete": "generation",
    "infill": "generation",
    "chat": "generation",
    # serving and the playground (notebook 07)
    "LocalServer": "serving",
    "launch_playground": "playground",
    # evaluation (notebook 06)
    "pass_at_k": "evaluation",
    # fine-tuning with LoRA and QLoRA (notebook 09); its target set: codellama_course.finetuning_data
    "fim_codec": "finetuning_data",
    "build_examples": "finetuning_data",
    "lora_config": "finetuning",
    "train_lora": "finetuning",
    "heldout_loss": "finetuning",
    "adapter_size": "finetuning",
    "qlora_bnb_config": "finetuning",
    "prepare_qlora": "finetuning",
    "estimate_training_memory": "training_memory",
}

# Deprecated top-level names (kept for one release; each warns once per use with its new home).
# old name -> "module:new_name" (absolute module path, so a name can move into `codellama_course.lessons`).
# A new name ending in "()" is called: `cc.NANO_DIR` gives `nano_dir()`.
_MOVED: dict[str, str] = {
    # serving (notebook 07): serve() itself is deprecated too; use LocalServer(model).start()
    "serve": "codellama_course.serving:serve",
    # tokens and the blog: prompt plumbing stays in its submodule, the lesson tools moved to lessons
    "fill_me": "codellama_course.prompts:fill_me",
    "infill_stop_ids": "codellama_course.prompts:infill_stop_ids",
    "chat_style": "codellama_course.prompts:chat_style",
    "inspect_tokenizer": "codellama_course.lessons:inspect_tokenizer",
    "compare_ids": "codellama_course.lessons:compare_ids",
    "compare_infill": "codellama_course.lessons:compare_infill",
    "compare_chat": "codellama_course.lessons:compare_chat",
    "blog_output": "codellama_course.lessons:blog_output",
    # memory, fit and precision
    "memory_table": "codellama_course.lessons:memory_table",
    "plot_kv_cache": "codellama_course.lessons:plot_kv_cache",
    "plot_fit_chart": "codellama_course.lessons:plot_fit_chart",
    "measure_precisions": "codellama_course.lessons:measure_precisions",
    "family_fit": "codellama_course.lessons:family_fit",
    "plot_family_fit": "codellama_course.lessons:plot_family_fit",
    "roofline_table": "codellama_course.lessons:roofline_table",
    "measure_model": "codellama_course.memory:loaded_memory",
    "NANO_DIR": "codellama_course.registry:nano_dir()",
}
REMOVED_IN = "0.3.0"

__all__ = sorted(_EXPORTS) + ["__version__"]

# `preflight` names both a submodule and its function. The first `from .preflight import ...` anywhere in the
# package would set this attribute to the module (`cc.load(); cc.preflight()` -> "'module' object is not
# callable"), so the light, standard-library-only module is imported now and the function bound over it.
from .preflight import preflight  # noqa: E402


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        module_name, new_name = _MOVED[name].split(":")
        call = new_name.endswith("()")
        new_name = new_name.removesuffix("()")
        warnings.warn(
            f"codellama_course.{name} is deprecated and goes in {REMOVED_IN}: "
            f"use `from {module_name} import {new_name}`" + (f" and call `{new_name}()`." if call else "."),
            FutureWarning,
            stacklevel=2,
        )
        value = getattr(importlib.import_module(module_name), new_name)
        return value() if call else value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'codellama_course' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
