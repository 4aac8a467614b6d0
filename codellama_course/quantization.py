"""Precision names and the bitsandbytes configuration behind ``load(precision="4bit" | "8bit")``.

Notebook 01 shows the memory side, notebook 05 goes deeper (NF4 vs FP4, double quantization,
compute dtype). transformers 5 removed ``from_pretrained(load_in_4bit=True)``: the only way is
``quantization_config=BitsAndBytesConfig(...)``, which :func:`quantization_config` builds.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

__all__ = ["PRECISIONS", "normalize_precision", "quantization_config", "bitsandbytes_status",
           "require_bitsandbytes", "BitsAndBytesUnavailableError", "DEFAULT_4BIT", "BYTES_PER_PARAM"]

# bitsandbytes logs a machine-dependent warning at import on CPUs with AVX512-BF16 when the optional
# `kernels` package is absent. It is harmless (a slower fallback kernel is used) and would make
# notebook outputs differ between machines, so it is silenced here.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

PRECISIONS = ("fp32", "bf16", "fp16", "8bit", "4bit")

_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "32bit": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "16bit": "fp16",
    "8bit": "8bit", "int8": "8bit", "llm.int8": "8bit", "8-bit": "8bit",
    "4bit": "4bit", "nf4": "4bit", "fp4": "4bit", "int4": "4bit", "4-bit": "4bit",
}

# bytes per parameter of the *dense* precisions; quantized ones are computed in memory.py
BYTES_PER_PARAM = {"fp32": 4, "bf16": 2, "fp16": 2}

# What "4bit" means in this course unless you say otherwise: the QLoRA recipe.
DEFAULT_4BIT = {"quant_type": "nf4", "double_quant": True, "blocksize": 64}


class BitsAndBytesUnavailableError(ImportError):
    """4-bit/8-bit loading was asked for but bitsandbytes cannot be used here."""


def normalize_precision(precision: Any) -> str:
    """``"bfloat16"``, ``torch.bfloat16`` → ``"bf16"``; ``"int8"`` → ``"8bit"``; ``"nf4"`` → ``"4bit"``.

    ``"auto"`` is returned unchanged (``loading.auto_precision`` decides it for the hardware)."""
    if precision is None:
        return "auto"
    text = str(precision).lower().removeprefix("torch.")
    if text == "auto":
        return "auto"
    try:
        return _ALIASES[text]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; use one of: auto, {', '.join(PRECISIONS)}") from None


def torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[normalize_precision(precision)]


def bitsandbytes_status() -> tuple[bool, str]:
    """(usable, why). Never raises. On CPU, bitsandbytes >= 0.48 has a working 4-bit/8-bit backend."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return False, "bitsandbytes is not installed (pip install bitsandbytes)"
    try:
        import bitsandbytes  # noqa: F401
        import torch
    except Exception as exc:  # broken CUDA setup, wrong wheel, ...
        return False, f"bitsandbytes is installed but fails to import: {type(exc).__name__}: {exc}"
    version = getattr(bitsandbytes, "__version__", "0")
    if torch.cuda.is_available():
        return True, f"bitsandbytes {version} (CUDA)"
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) >= (0, 48):
        return True, f"bitsandbytes {version} (CPU backend: works, but slower than a GPU)"
    return False, f"bitsandbytes {version} has no CPU backend; upgrade to >= 0.48 or use a GPU"


def require_bitsandbytes(precision: str = "4bit") -> None:
    ok, why = bitsandbytes_status()
    if not ok:
        raise BitsAndBytesUnavailableError(
            f"precision={precision!r} needs bitsandbytes, but {why}.\n"
            "  • Colab/Linux with a GPU: pip install -U bitsandbytes   (then Runtime > Restart session)\n"
            "  • or load without quantization: precision='fp16' (GPU) / 'fp32' (CPU), or the nano model.")


def quantization_config(precision: str, *, compute_dtype: Any = None, quant_type: str | None = None,
                        double_quant: bool | None = None, skip_modules: list[str] | None = None):
    """The ``BitsAndBytesConfig`` for ``"4bit"``/``"8bit"``; ``None`` for dense precisions.

    4-bit defaults to NF4 with double quantization (the QLoRA recipe) and computes in ``compute_dtype``
    (default: bf16 where the hardware has it, else fp16 on GPU; bf16 on CPU).
    """
    precision = normalize_precision(precision)
    if precision not in ("4bit", "8bit"):
        return None
    require_bitsandbytes(precision)
    import torch
    from transformers import BitsAndBytesConfig

    if precision == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip_modules)
    if compute_dtype is None:
        if torch.cuda.is_available():
            compute_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            compute_dtype = torch.bfloat16
    elif not isinstance(compute_dtype, torch.dtype):
        compute_dtype = torch_dtype(compute_dtype)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type or DEFAULT_4BIT["quant_type"],
        bnb_4bit_use_double_quant=DEFAULT_4BIT["double_quant"] if double_quant is None else double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=skip_modules,
    )
