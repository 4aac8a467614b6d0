"""Precision names: ``"bf16"``, ``"4bit"``, ``"fp4-nodq"``, a ``BitsAndBytesConfig``... -> one :class:`PrecisionSpec`.

Pure: no torch, no probes. Everything that takes a precision (``load``, ``estimate_memory``,
``quantization_config``) parses it once with :func:`parse_precision` and passes the spec on.

==============  ==================================================================================
``fp32``        32-bit floats (the CPU default)
``bf16``        bfloat16 (Ampere+ GPUs; CPU)
``fp16``        float16 (T4/V100 and older: they have no bf16)
``8bit``        LLM.int8 (Dettmers et al. 2022): int8 weights, one scale per row, outlier columns of the
                input (``|x| > llm_int8_threshold`` = 6) multiplied in fp16. Non-quantized parts in fp16.
``4bit``/``nf4`` NF4 + double quantization, blocks of 64 weights (the QLoRA recipe; the course default)
``fp4``         FP4 + double quantization (FP4 is what ``BitsAndBytesConfig(load_in_4bit=True)`` gives
                when you do not choose: the blog's recipe)
``nf4-nodq``,   the same without double quantization (fp32 block scales: +0.37 bit per weight)
``fp4-nodq``
``auto``        what this machine should use: :func:`choose_precision` decides from the machine's facts
==============  ==================================================================================

How ``"auto"`` is decided (:func:`choose_precision`; ``memory.auto_precision`` asks the machine for the facts):

* NVIDIA GPU with compute capability ≥ 8.0 (A100, L4, A10G, RTX 30xx/40xx, H100): **bf16**.
* Older NVIDIA GPUs (T4 = 7.5, V100 = 7.0): **fp16** — they have no bf16.
  On either, if the model would not fit comfortably in bf16/fp16 (7B on a 16 GB T4), **4bit** when
  bitsandbytes is usable.
* CPU: **fp32** — exact, and fast enough for nano. **bf16** when fp32 weights would take more than half
  the free RAM *and* the CPU computes bf16 in hardware (AVX512-BF16, AMX, Arm BF16). Where torch only
  emulates bf16 (AVX2-only CPUs: ~13x slower matmuls), bf16 only when fp32 would not fit at all.
* Apple MPS: fp16.

The environment variable ``CODELLAMA_COURSE_PRECISION`` (e.g. ``fp16``, ``bf16``, ``4bit``) overrides that
choice for every ``precision="auto"``, the way ``CODELLAMA_COURSE_MODEL`` picks the model: a whole run of the
course in one precision (``scripts/gpu_check.sh`` uses it). An explicit ``precision=`` still wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["PRECISIONS", "QUANT_PRECISIONS", "DEFAULT_4BIT", "BLOG_4BIT", "COMFORT", "PRECISION_ENV_VAR",
           "PrecisionSpec", "parse_precision", "normalize_precision", "torch_dtype", "choose_precision"]

PRECISIONS = ("fp32", "bf16", "fp16", "8bit", "4bit")  # storage classes (what estimate_memory takes)
QUANT_PRECISIONS = ("8bit", "nf4", "fp4", "nf4-nodq", "fp4-nodq")  # the bitsandbytes choices, by name
PRECISION_ENV_VAR = "CODELLAMA_COURSE_PRECISION"  # what precision="auto" means, when set
COMFORT = 0.85  # a model "fits" below this share of the memory; "tight" up to 100 %

# What "4bit" means in this course unless you say otherwise: the QLoRA recipe.
DEFAULT_4BIT = {"quant_type": "nf4", "double_quant": True, "blocksize": 64}
# What the 2023 Code Llama blog post used: BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=fp16)
# and bitsandbytes' defaults for the rest.
BLOG_4BIT = {"quant_type": "fp4", "double_quant": False, "compute_dtype": "fp16"}

_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "32bit": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "16bit": "fp16",
    "8bit": "8bit", "int8": "8bit", "llm.int8": "8bit", "8-bit": "8bit",
    "4bit": "4bit", "nf4": "4bit", "fp4": "4bit", "int4": "4bit", "4-bit": "4bit",
    "nf4-nodq": "4bit", "fp4-nodq": "4bit",
}
_BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "8bit": 8, "4bit": 4}


@dataclass(frozen=True)
class PrecisionSpec:
    """What a precision name means: storage class, and for 4-bit the data type and double quantization.

    Taught in: notebook 05 §2."""

    name: str  # "auto", "fp32", "bf16", "fp16", "8bit", "nf4", "fp4", "nf4-nodq", "fp4-nodq"
    storage: str  # "auto" | "fp32" | "bf16" | "fp16" | "8bit" | "4bit" (what memory.estimate_memory takes)
    quant_type: str | None = None  # "nf4" | "fp4" for 4-bit
    double_quant: bool | None = None  # 4-bit only
    config: Any = field(default=None, compare=False, repr=False)  # the BitsAndBytesConfig it was read from

    @property
    def is_auto(self) -> bool:
        return self.storage == "auto"

    @property
    def quantized(self) -> bool:
        return self.storage in ("8bit", "4bit")

    @property
    def bits(self) -> int:
        if self.is_auto:
            raise ValueError("'auto' has no bit width until it is resolved (memory.auto_precision())")
        return _BITS[self.storage]


def _is_bnb_config(obj: Any) -> bool:
    return type(obj).__name__ == "BitsAndBytesConfig" and hasattr(obj, "load_in_4bit")


def parse_precision(precision: Any) -> PrecisionSpec:
    """``"4bit"`` → NF4 + double quant; ``"fp4-nodq"`` → FP4 without; ``torch.bfloat16`` → bf16;
    ``None``/``"auto"`` → the auto spec; a ``BitsAndBytesConfig`` → what it says. A spec is returned as is.

    Raises ``ValueError`` naming the accepted names for anything else.

    Taught in: notebook 05 §2."""
    if isinstance(precision, PrecisionSpec):
        return precision
    if precision is None:
        return PrecisionSpec("auto", "auto")
    if _is_bnb_config(precision):
        if precision.load_in_4bit:
            qt, dq = precision.bnb_4bit_quant_type, bool(precision.bnb_4bit_use_double_quant)
            return PrecisionSpec(qt + ("" if dq else "-nodq"), "4bit", qt, dq, config=precision)
        return PrecisionSpec("8bit", "8bit", config=precision)
    text = str(precision).strip().lower().removeprefix("torch.")
    if text == "auto":
        return PrecisionSpec("auto", "auto")
    storage = _ALIASES.get(text)
    if storage is None:
        raise ValueError(f"unknown precision {precision!r}; use one of: auto, {', '.join(PRECISIONS)}, "
                         f"{', '.join(QUANT_PRECISIONS[1:])}")
    if storage != "4bit":
        return PrecisionSpec(storage, storage)
    qt = "fp4" if text.startswith("fp4") else "nf4"
    dq = not text.endswith("-nodq")
    return PrecisionSpec(qt + ("" if dq else "-nodq"), "4bit", qt, dq)


def normalize_precision(precision: Any) -> str:
    """The storage class: ``"bfloat16"``, ``torch.bfloat16`` → ``"bf16"``; ``"int8"`` → ``"8bit"``;
    ``"nf4"``, ``"fp4"``, a 4-bit ``BitsAndBytesConfig`` → ``"4bit"``; ``"auto"`` stays ``"auto"``.

    Taught in: notebook 01 §6."""
    return parse_precision(precision).storage


def torch_dtype(precision: Any):
    """The torch dtype of a dense precision (``"bf16"`` → ``torch.bfloat16``); ``ValueError`` for 4/8-bit.

    Taught in: notebook 01 §6."""
    import torch

    storage = parse_precision(precision).storage
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if storage not in dtypes:
        raise ValueError(f"{precision!r} is not a dense precision (fp32, bf16, fp16): it has no single torch dtype")
    return dtypes[storage]


def choose_precision(*, cuda: bool, gpu_bf16: bool = False, mps: bool = False, cpu_bf16: bool = False,
                     capacity_bytes: int = 0, bitsandbytes_usable: bool = False,
                     need_bytes: Callable[[str], int] | None = None, fp32_weights_bytes: int | None = None,
                     forced: str | None = None) -> str:
    """What ``"auto"`` means for a machine described by its facts (the rules in the module docstring).

    ``need_bytes(precision)``: what the model needs in that precision (weights, KV cache, activations), and
    ``fp32_weights_bytes``: its fp32 weights; both None when no model is in mind. ``forced``: the value of
    ``CODELLAMA_COURSE_PRECISION``, returned as given when it is a precision name (``"nf4"`` stays ``"nf4"``).

    >>> choose_precision(cuda=True, gpu_bf16=False)            # a T4, no model in mind
    'fp16'

    Taught in: notebook 01 §6."""
    forced = (forced or "").strip().lower()
    if forced and forced != "auto":
        try:
            parse_precision(forced)
        except ValueError as err:
            raise ValueError(f"{PRECISION_ENV_VAR}={forced!r}: {err}; or unset it to let the course choose") from None
        return forced
    if cuda:
        dense = "bf16" if gpu_bf16 else "fp16"  # a T4 emulates bf16: is_bf16_supported() says True
        if need_bytes is not None and need_bytes(dense) > COMFORT * capacity_bytes and bitsandbytes_usable:
            return "4bit"
        return dense
    if mps:
        return "fp16"
    if fp32_weights_bytes is not None:
        share = 0.5 if cpu_bf16 else COMFORT  # emulated bf16: only when fp32 cannot fit
        if fp32_weights_bytes > share * capacity_bytes:
            return "bf16"
    return "fp32"
