"""How much memory a Code Llama needs, computed from its architecture — no download.

Taught in notebook 01 (section 5, "How much memory?") and used by ``load()`` to refuse a model that
cannot fit *before* downloading it, to decide what ``precision="auto"`` means here (:func:`auto_precision`),
and by ``preflight()`` for the fit table.

    total = weights + KV cache + activations

* **weights**: parameters × bytes per parameter. 4-bit (bitsandbytes NF4/FP4) packs two weights per
  byte in every decoder ``nn.Linear`` and stores one scale (``absmax``) per block of 64 weights: fp32,
  or with double quantization one byte plus an fp32 scale per 256 blocks. 8-bit (LLM.int8) stores
  one byte per weight plus an fp32 scale per output row. Embeddings, ``lm_head`` and the norms stay
  in the compute dtype. Those scales are real memory but are *not* parameters, so
  ``model.get_memory_footprint()`` does not count them: compare it with ``footprint_bytes``.
* **KV cache**: 2 (K and V) × layers × kv_heads × head_dim × tokens × batch × bytes. Grouped-query
  attention (34B, 70B: 8 KV heads for 64 query heads) makes it 8× smaller per token.
* **activations**: the transient peak of one forward pass over the prompt, about
  tokens × batch × (2·hidden + 3·intermediate) × bytes (one layer's MLP intermediates dominate).
  Rough on purpose; CUDA's own context (~0.3-0.5 GiB) is not included.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import codellama_course.hardware as hardware  # probes called through the module: tests monkeypatch them
from .precision import COMFORT, DEFAULT_4BIT, PRECISION_ENV_VAR, choose_precision, parse_precision
from .registry import Variant, as_variant, find_variant

__all__ = ["MemoryEstimate", "estimate_memory", "kv_cache_bytes", "loaded_memory", "count_parameters", "fit_status",
           "auto_precision", "FIT_CONTEXT_TOKENS", "GIB"]

GIB = 2**30
FIT_CONTEXT_TOKENS = 4096  # context assumed when checking that a model fits


def _gib(n: float) -> float:
    return n / GIB


@dataclass(frozen=True)
class MemoryEstimate:
    """What :func:`estimate_memory` returns: weights, KV cache and activations, in bytes (and GiB).

    Taught in: notebook 01 §5."""

    model: str
    precision: str
    n_params: int
    context_tokens: int
    batch_size: int
    weights_bytes: int  # everything the weights occupy, quantization scales included
    quant_state_bytes: int  # the part of weights_bytes that is scales (absmax/SCB), not parameters
    kv_cache_bytes: int
    overhead_bytes: int  # activations of one forward pass over context_tokens

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes

    @property
    def footprint_bytes(self) -> int:
        """What ``model.get_memory_footprint()`` reports after loading: parameters only."""
        return self.weights_bytes - self.quant_state_bytes

    @property
    def weights_gib(self) -> float:
        return _gib(self.weights_bytes)

    @property
    def kv_cache_gib(self) -> float:
        return _gib(self.kv_cache_bytes)

    @property
    def overhead_gib(self) -> float:
        return _gib(self.overhead_bytes)

    @property
    def total_gib(self) -> float:
        return _gib(self.total_bytes)

    @property
    def bytes_per_param(self) -> float:
        return self.weights_bytes / self.n_params

    def __str__(self) -> str:
        s = f"{self.model} in {self.precision}: weights {self.weights_gib:.2f} GiB"
        if self.context_tokens:
            s += (f" + KV cache {self.kv_cache_gib:.2f} GiB ({self.context_tokens:,} tokens × {self.batch_size})"
                  f" + activations {self.overhead_gib:.2f} GiB = {self.total_gib:.2f} GiB")
        return s

    def _repr_pretty_(self, p, cycle) -> None:  # IPython
        p.text(str(self))


def _linear_shapes(v: Variant) -> list[tuple[int, int]]:
    """(out_features, in_features) of every decoder nn.Linear that bitsandbytes converts."""
    h, q, kv, i = v.hidden_size, v.num_heads * v.head_dim, v.num_kv_heads * v.head_dim, v.intermediate_size
    per_layer = [(q, h), (kv, h), (kv, h), (h, q), (i, h), (i, h), (h, i)]
    return per_layer * v.num_layers


def _quantized_linear_bytes(v: Variant, precision: str, double_quant: bool, blocksize: int) -> tuple[int, int]:
    """(total bytes, of which scale bytes) of all decoder Linear weights in 4-bit or 8-bit."""
    total = scales = 0
    for out_f, in_f in _linear_shapes(v):
        n = out_f * in_f
        if precision == "8bit":
            data, sc = n, 4 * out_f  # int8 weights + one fp32 scale (SCB) per output row
        else:
            data = math.ceil(n / 2)  # two 4-bit codes per byte
            blocks = math.ceil(n / blocksize)
            if double_quant:
                # uint8 absmax per block + fp32 absmax per 256 blocks + 256-entry fp32 code + fp32 offset
                sc = blocks + 4 * math.ceil(blocks / 256) + 4 * 256 + 4
            else:
                sc = 4 * blocks  # fp32 absmax per block
            sc += 4 * 16  # the 16-value NF4/FP4 code book of this tensor
        total += data + sc
        scales += sc
    return total, scales


_DENSE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def _bytes(dtype: Any) -> int:
    storage = parse_precision(dtype).storage
    if storage not in _DENSE_BYTES:
        raise ValueError(f"{dtype!r} is not a dense dtype: use fp32, bf16 or fp16")
    return _DENSE_BYTES[storage]


def estimate_memory(model: Any, precision: Any = "fp16", context_tokens: int = 0, batch_size: int = 1, *,
                    compute_dtype: str | None = None, kv_dtype: str | None = None,
                    double_quant: bool | None = None, blocksize: int | None = None) -> MemoryEstimate:
    """Estimate the memory of ``model`` (variant name, Hub id, "nano", folder, config or loaded model).

    ``precision``: "fp32", "bf16", "fp16", "8bit", "4bit" (or "auto": what ``load()`` would pick here).
    ``compute_dtype``: dtype of what is not quantized in 4/8-bit (default "bf16"; "fp32" on CPU doubles
    embeddings). ``kv_dtype``: dtype of the KV cache (default: the compute dtype).

    >>> round(estimate_memory("7b", "fp16").weights_gib, 2)   # Meta's checkpoint: 12.55 GiB
    12.55

    Taught in: notebook 01 §5."""
    v = as_variant(model)
    spec = parse_precision(precision)
    if spec.is_auto:
        spec = parse_precision(auto_precision(v))  # CODELLAMA_COURSE_PRECISION may say "nf4"
    if context_tokens < 0 or batch_size < 1:
        raise ValueError("context_tokens must be >= 0 and batch_size >= 1")
    if not spec.quantized:
        compute = spec.storage if compute_dtype is None else parse_precision(compute_dtype).storage
        weights = v.n_params * _bytes(spec.storage)
        scales = 0
    else:
        compute = parse_precision(compute_dtype or "bf16").storage
        dq = DEFAULT_4BIT["double_quant"] if double_quant is None else double_quant
        bs = blocksize or DEFAULT_4BIT["blocksize"]
        linear, scales = _quantized_linear_bytes(v, spec.storage, dq, bs)
        dense_params = v.n_params - v.linear_params()  # embeddings, lm_head, norms
        weights = linear + dense_params * _bytes(compute)
    kv_b = _bytes(kv_dtype or compute)
    kv = int(v.kv_bytes_per_token(kv_b) * context_tokens * batch_size)
    act = context_tokens * batch_size * (2 * v.hidden_size + 3 * v.intermediate_size) * _bytes(compute)
    return MemoryEstimate(model=v.name, precision=spec.storage, n_params=v.n_params, context_tokens=context_tokens,
                          batch_size=batch_size, weights_bytes=int(weights), quant_state_bytes=int(scales),
                          kv_cache_bytes=kv, overhead_bytes=int(act))


def kv_cache_bytes(model: Any, context_tokens: int, batch_size: int = 1, dtype: str = "fp16") -> int:
    """K+V cache size alone.

    Taught in: notebook 01 §4."""
    return int(as_variant(model).kv_bytes_per_token(_bytes(dtype)) * context_tokens * batch_size)


def fit_status(need_bytes: float, capacity_bytes: float) -> str:
    """"fits" (≤ 85 % of the memory), "tight" (≤ 100 %: may work with short prompts), or "no".

    Taught in: notebook 01 §5, notebook 05 §4."""
    if capacity_bytes <= 0:
        return "no"
    ratio = need_bytes / capacity_bytes
    return "fits" if ratio <= COMFORT else "tight" if ratio <= 1.0 else "no"


def auto_precision(variant: Variant | str | None = None) -> str:
    """The precision ``load(precision="auto")`` uses on this machine: the probes of
    :mod:`codellama_course.hardware` and ``variant``'s size, decided by
    :func:`~codellama_course.precision.choose_precision` (its docstring has the rules).
    ``CODELLAMA_COURSE_PRECISION``, when set, is returned as given (``"nf4"`` stays ``"nf4"``).

    Taught in: notebook 01 §6."""
    forced = os.environ.get(PRECISION_ENV_VAR, "")
    v = None
    if variant is not None:
        v = variant if isinstance(variant, Variant) else find_variant(str(variant))
    cuda = hardware.cuda_available()
    need = fp32 = None
    capacity = 0
    if v is not None and not (forced.strip() and forced.strip().lower() != "auto"):
        capacity = hardware.capacity_bytes()[0]
        need = lambda p: estimate_memory(v, p, FIT_CONTEXT_TOKENS).total_bytes  # noqa: E731
        fp32 = v.n_params * 4
    return choose_precision(
        cuda=cuda, gpu_bf16=cuda and hardware.gpu_has_native_bf16(), mps=not cuda and hardware.mps_available(),
        cpu_bf16=not cuda and v is not None and hardware.cpu_has_native_bf16(), capacity_bytes=capacity,
        bitsandbytes_usable=cuda and v is not None and hardware.bitsandbytes_status()[0], need_bytes=need,
        fp32_weights_bytes=fp32, forced=forced)


def loaded_memory(model) -> dict[str, int]:
    """What a loaded model really occupies: parameters, buffers, and bitsandbytes scales.

    ``params + buffers`` equals ``model.get_memory_footprint()``; ``quant_state`` is the memory
    ``get_memory_footprint()`` leaves out (absmax/code tensors of 4-bit weights, SCB of 8-bit ones).

    Taught in: notebook 01 §6."""
    import torch

    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    quant = 0
    seen: set[int] = set()

    def add(t):
        nonlocal quant
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            quant += t.numel() * t.element_size()

    for p in model.parameters():
        qs = getattr(p, "quant_state", None)
        if qs is not None:
            for name in ("absmax", "code", "offset"):
                add(getattr(qs, name, None))
            st2 = getattr(qs, "state2", None)
            if st2 is not None:
                add(getattr(st2, "absmax", None))
                add(getattr(st2, "code", None))
        add(getattr(p, "SCB", None))
    return {"params": params, "buffers": buffers, "quant_state": quant, "total": params + buffers + quant}


def count_parameters(model) -> int:
    """The number of weights of a loaded model, quantized or not (notebook 00, exercise 2).

    ``sum(p.numel() for p in model.parameters())`` counts *stored elements*: bitsandbytes' 4-bit
    ``Params4bit`` packs two weights per byte, so there it is about half the real count. A 4-bit weight
    keeps its original shape in ``p.quant_state.shape``; that is what is counted here. 8-bit weights store
    one int8 per weight, so their ``numel()`` is already right. transformers' ``model.num_parameters()`` agrees
    on a model it quantized itself (it doubles packed counts when ``is_loaded_in_4bit`` is set); this works on
    any ``nn.Module``, also one quantized by hand (``benchmarks/bench_gpu_quantization.py``), on any device.

    Taught in: notebook 00 exercises."""
    total = 0
    for p in model.parameters():
        state = getattr(p, "quant_state", None)
        total += math.prod(state.shape) if state is not None else p.numel()
    return total
