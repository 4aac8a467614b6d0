"""4-bit and 8-bit Code Llama: the ``BitsAndBytesConfig`` behind ``load(precision=...)`` and its checks.

Taught in notebook 05 (``05_quantization.ipynb``); notebook 01 shows the memory side. transformers 5 removed
``from_pretrained(load_in_4bit=True)``: the only way is ``quantization_config=BitsAndBytesConfig(...)``,
which :func:`quantization_config` builds from a precision name (the names: :mod:`codellama_course.precision`).

A ``BitsAndBytesConfig`` is accepted wherever a name is. Compute dtype (what 4-bit layers dequantize to):
bf16 on Ampere+ GPUs and on CPU, fp16 on T4/V100 (no bf16 in hardware) — asking for bf16 there falls back
to fp16 with a :class:`PrecisionFallbackWarning`.

Clear errors, each raised before anything is loaded: :class:`BitsAndBytesUnavailableError` (4/8-bit
without a usable bitsandbytes) and :class:`UnsupportedLayerShapeError` (a layer shape bitsandbytes' fused
CPU 4-bit kernel rejects; it would otherwise fail at the first forward pass with "N must be divisible by
block_n"). The measurements of notebook 05 live in :mod:`codellama_course.lessons`.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Iterable

import codellama_course.hardware as hardware  # probes called through the module: tests monkeypatch them
from .precision import DEFAULT_4BIT, parse_precision, torch_dtype
from .registry import as_variant

__all__ = ["quantization_config", "describe_config", "load_dtype", "default_compute_dtype", "require_bitsandbytes",
           "check_4bit_shapes", "BitsAndBytesUnavailableError", "UnsupportedLayerShapeError",
           "PrecisionFallbackWarning", "NF4_LEVELS", "FP4_LEVELS", "CPU_4BIT_BLOCK_N"]


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
    """4-bit/8-bit loading was asked for but bitsandbytes cannot be used here.

    Taught in: notebook 05 deep dive "pitfalls and fixes"."""


class UnsupportedLayerShapeError(ValueError):
    """A layer shape bitsandbytes' fused CPU 4-bit kernel cannot run; raised before loading.

    Taught in: notebook 05 deep dive "pitfalls and fixes"."""


class PrecisionFallbackWarning(UserWarning):
    """The precision asked for is not available on this hardware; a working one is used instead.

    Taught in: notebook 05 §2."""


# --------------------------------------------------------------------------------------------
# bitsandbytes and the compute dtype


def require_bitsandbytes(precision: str = "4bit") -> None:
    """Raise :class:`BitsAndBytesUnavailableError`, saying what to do, when bitsandbytes cannot be used here.

    Taught in: notebook 05 §2."""
    ok, why = hardware.bitsandbytes_status()
    if not ok:
        raise BitsAndBytesUnavailableError(
            f"precision={precision!r} needs bitsandbytes, but {why}.\n"
            "  • Colab/Linux with a GPU: pip install -U bitsandbytes   (then Runtime > Restart session)\n"
            "  • or load without quantization: precision='fp16' (GPU) / 'fp32' (CPU), or the nano model.")


def default_compute_dtype(requested: Any = None):
    """The dtype 4-bit layers compute in: ``requested`` if the hardware has it, else the best it has.

    None → bf16 on Ampere+ GPUs and on CPU, fp16 on T4/V100. bf16 asked for on a GPU without bf16 →
    fp16 and a :class:`PrecisionFallbackWarning` (bf16 would be emulated: slow).

    Taught in: notebook 05 §2."""
    import torch

    cuda = hardware.cuda_available()
    if requested is None:
        if cuda:
            return torch.bfloat16 if hardware.gpu_has_native_bf16() else torch.float16
        return torch.bfloat16
    dtype = requested if isinstance(requested, torch.dtype) else torch_dtype(requested)
    if dtype == torch.bfloat16 and cuda and not hardware.gpu_has_native_bf16():
        warnings.warn(
            f"bf16 compute was requested, but {hardware.gpu_name()} has no bf16 in hardware (it needs compute capability "
            "8.0+: A100, L4, A10G, RTX 30xx/40xx); computing in fp16 instead.", PrecisionFallbackWarning,
            stacklevel=3)
        return torch.float16
    return dtype


def load_dtype(config) -> Any:
    """``from_pretrained(dtype=...)`` for a ``BitsAndBytesConfig``: the parts that stay unquantized
    (embeddings, norms, ``lm_head``) are kept in this dtype.

    4-bit: its compute dtype. 8-bit: fp16, because LLM.int8 multiplies in fp16 — with bf16 inputs
    bitsandbytes casts every call (and logs a warning each time).

    Taught in: notebook 05 §2."""
    import torch

    if config is None:
        return None
    if config.load_in_4bit:
        return config.bnb_4bit_compute_dtype or torch.float32
    return torch.float16


# --------------------------------------------------------------------------------------------
# bitsandbytes' CPU 4-bit kernel and layer shapes

CPU_4BIT_BLOCK_N = 32  # bitsandbytes' packed CPU weight layout groups 32 output rows


def _linear_layers(model: Any) -> list[tuple[str, int, int]]:
    """(module name, out_features, in_features) of the decoder Linear layers 4-bit converts, one per kind."""
    v = as_variant(model)
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
    only where that kernel runs (:func:`~codellama_course.hardware.cpu_4bit_kernel_active`), unless
    ``kernel_active`` says otherwise.

    Taught in: notebook 05 deep dive "pitfalls and fixes"."""
    if kernel_active is None:
        kernel_active = hardware.cpu_4bit_kernel_active()
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

    Taught in: notebook 05 §2.
    """
    import torch

    spec = parse_precision(precision)
    if spec.config is not None:
        config = spec.config
        require_bitsandbytes(spec.name)
        if config.load_in_4bit:
            cdt = config.bnb_4bit_compute_dtype
            if cdt == torch.float32 and hardware.cuda_available():
                warnings.warn("this 4-bit config computes in float32 (BitsAndBytesConfig's default): every layer "
                              "dequantizes to fp32, which is slow on a GPU. Set bnb_4bit_compute_dtype="
                              "torch.bfloat16 (Ampere+) or torch.float16 (T4).", PrecisionFallbackWarning,
                              stacklevel=2)
            elif cdt is not None:
                config.bnb_4bit_compute_dtype = default_compute_dtype(cdt)
            if model is not None:
                check_4bit_shapes(model, skip_modules=config.llm_int8_skip_modules or ["lm_head"])
        return config

    if spec.is_auto:
        raise ValueError("quantization_config needs a concrete precision; resolve 'auto' first "
                         "(codellama_course.memory.auto_precision())")
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
    """One line: what a ``BitsAndBytesConfig`` (or None: dense) does.

    Taught in: notebook 05 §2."""
    if config is None:
        return "no quantization"
    if config.load_in_8bit:
        return f"LLM.int8: int8 weights, fp16 outliers above |x| > {config.llm_int8_threshold:g}"
    dtype = str(config.bnb_4bit_compute_dtype).removeprefix("torch.")
    return (f"4-bit {config.bnb_4bit_quant_type.upper()}, blocks of 64, "
            f"{'double quantization' if config.bnb_4bit_use_double_quant else 'fp32 block scales'}, "
            f"computes in {dtype}")
