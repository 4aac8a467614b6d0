"""codellama-course: the helpers behind the Code Llama notebooks.

Every public name is importable from the top level (``codellama_course.load``).
Submodules are imported lazily, so ``import codellama_course`` stays cheap and
does not import torch until a helper that needs it is used.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # the family and memory (notebooks 00-01)
    "variants": "registry",
    "get_variant": "registry",
    "estimate_memory": "memory",
    "memory_table": "memory",
    "measure_model": "memory",
    "count_parameters": "memory",
    "plot_kv_cache": "memory",
    # loading and the one model switch
    "load": "loading",
    "resolve_model": "loading",
    "auto_precision": "loading",
    "quantization_config": "quantization",
    "preflight": "preflight",
    "plot_fit_chart": "preflight",
    # prompts, exact to the token (notebooks 03-04)
    "infill_ids": "prompts",
    "chat_prompt": "prompts",
    "chat_ids": "prompts",
    "fill_me": "prompts",
    "decode_infill": "prompts",
    "infill_stop_ids": "prompts",
    "chat_style": "prompts",
    "chat_stop_ids": "prompts",
    "inspect_tokenizer": "prompts",
    "compare_ids": "prompts",
    "compare_infill": "prompts",
    "compare_chat": "prompts",
    # generation (notebooks 02-04)
    "complete": "generation",
    "infill": "generation",
    "chat": "generation",
    # serving and the playground (notebook 07)
    "LocalServer": "serving",
    "serve": "serving",
    "launch_playground": "playground",
    # 4-bit and 8-bit (notebook 05)
    "measure_precisions": "quantization",
    "family_fit": "quantization",
    "plot_family_fit": "quantization",
    "roofline_table": "quantization",
    # evaluation (notebook 06)
    "pass_at_k": "evaluation",
    # what the real model wrote for the 2023 blog post's examples (notebooks 02-04)
    "blog_output": "blog",
    # the nano model (notebook 08)
    "NANO_DIR": "nano",
    # fine-tuning with LoRA and QLoRA (notebook 09)
    "target_set": "finetuning_data",
    "fim_codec": "finetuning_data",
    "build_examples": "finetuning_data",
    "infill_examples": "finetuning_data",
    "KITCHEN_PROMPTS": "finetuning_data",
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
_MOVED: dict[str, str] = {
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
        warnings.warn(
            f"codellama_course.{name} is deprecated and goes in {REMOVED_IN}: "
            f"use `from {module_name} import {new_name}`.",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module_name), new_name)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'codellama_course' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
