"""How much memory fine-tuning needs, from the architecture alone: full fine-tuning, LoRA and QLoRA.

    total = weights + adapters + gradients + optimizer states + activations

* **weights**: every parameter in ``dtype`` (full, LoRA); for QLoRA the decoder's Linear layers in NF4
  with their scales (:func:`codellama_course.estimate_memory`'s 4-bit arithmetic) and the rest
  (embeddings, ``lm_head``, norms) in fp32, where ``prepare_model_for_kbit_training`` puts them.
* **adapters**: ``r × (in + out)`` per adapted Linear, in fp32 (peft keeps adapters in fp32 by default).
* **gradients**: one per trainable value: every parameter in full fine-tuning, the adapters with (Q)LoRA.
* **optimizer states**: AdamW's two fp32 moments, 8 bytes per trainable value (no fp32 master copy:
  the QLoRA paper's 16-bit baseline, "> 780 GB" for 65B, is 12 bytes per parameter).
* **activations**: what the forward pass keeps for the backward one, per token and layer about
  ``7·hidden + 2·kv_dim + 4·intermediate`` values (norm inputs, q/k/v, attention output, the MLP's four
  intermediates), plus the inputs of the adapted modules again for LoRA's dropout; with gradient checkpointing
  only each layer's input and one layer at a time. The loss adds ``vocab × (dtype + 8)`` bytes per token
  (the logits, their fp32 copy and log-softmax). Rough on purpose: allocator slack, CUDA's context and
  the optimizer's temporaries are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .memory import estimate_memory
from .registry import Variant, get_variant, variant_from_config, variant_from_folder

__all__ = ["TrainingMemory", "estimate_training_memory", "lora_parameter_count", "LLAMA_LINEAR_MODULES"]

GIB = 2**30
METHODS = ("full", "lora", "qlora")
# every nn.Linear inside a Llama decoder layer (what QLoRA targets; the LoRA paper used q_proj, v_proj)
LLAMA_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_DTYPE_BYTES = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2}


@dataclass(frozen=True)
class TrainingMemory:
    """A training-memory estimate, part by part (bytes)."""

    model: str
    method: str
    n_params: int
    trainable_params: int
    seq_len: int
    batch_size: int
    gradient_checkpointing: bool
    weights_bytes: int
    adapters_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int

    @property
    def total_bytes(self) -> int:
        return (self.weights_bytes + self.adapters_bytes + self.gradients_bytes + self.optimizer_bytes
                + self.activations_bytes)

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB

    def parts(self) -> dict[str, int]:
        """The breakdown, in bytes, in the order of the sum."""
        return {"weights": self.weights_bytes, "adapters": self.adapters_bytes, "gradients": self.gradients_bytes,
                "optimizer states": self.optimizer_bytes, "activations": self.activations_bytes}

    def __str__(self) -> str:
        gc = ", gradient checkpointing" if self.gradient_checkpointing else ""
        head = (f"{self.model} {self.method}: {self.trainable_params:,} of {self.n_params:,} parameters trained "
                f"(batch {self.batch_size} x {self.seq_len} tokens{gc})")
        rows = [f"  {name:<17}{b / GIB:9.2f} GiB" for name, b in self.parts().items()]
        return "\n".join([head, *rows, f"  {'total':<17}{self.total_gib:9.2f} GiB"])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython
        p.text(str(self))


def _variant(model: Any) -> Variant:
    """A Variant from a family name, "nano", a folder, a config (object or dict) or a loaded model."""
    if isinstance(model, Variant):
        return model
    if isinstance(model, (str, Path)):
        if Path(model).is_dir() and (Path(model) / "config.json").exists():
            return variant_from_folder(model)
        return get_variant(str(model))
    config = getattr(model, "config", model)
    if isinstance(config, dict):
        return variant_from_config(config)
    if hasattr(config, "to_dict"):
        name = str(getattr(config, "name_or_path", "") or "model").rstrip("/").split("/")[-1]
        return variant_from_config(config.to_dict(), name=name or "model")
    raise TypeError(f"cannot estimate training memory for {type(model).__name__}: pass a family name "
                    "('7b'), 'nano', a model folder, a config or a loaded model")


def _module_shapes(v: Variant) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each Linear in one decoder layer."""
    h, q, kv, i = v.hidden_size, v.num_heads * v.head_dim, v.num_kv_heads * v.head_dim, v.intermediate_size
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def lora_parameter_count(model: Any, r: int = 8, target_modules: Sequence[str] = LLAMA_LINEAR_MODULES) -> int:
    """Trainable values LoRA adds: ``r × (in + out)`` for every targeted Linear of every layer.

    Taught in: notebook 09 §2.
    """
    v = _variant(model)
    shapes = _module_shapes(v)
    unknown = [t for t in target_modules if t not in shapes]
    if unknown:
        raise ValueError(f"unknown target modules {unknown}: a Llama decoder layer has {list(shapes)}")
    return v.num_layers * sum(r * sum(shapes[t]) for t in target_modules)


def estimate_training_memory(model: Any, method: str = "lora", *, seq_len: int = 512, batch_size: int = 1,
                             lora_r: int = 8, gradient_checkpointing: bool = False, dtype: str = "bf16",
                             target_modules: Sequence[str] = LLAMA_LINEAR_MODULES,
                             lora_dropout: bool = True) -> TrainingMemory:
    """Estimate the memory of fine-tuning ``model`` (family name, ``"nano"``, folder, config or loaded model)
    with ``method`` ``"full"``, ``"lora"`` or ``"qlora"`` (see the module docstring for the arithmetic).

    ``dtype``: the weights' dtype for full and LoRA training, and the compute dtype of activations
    (``"fp32"`` on a CPU; QLoRA computes in bf16 or fp16 whatever is given here, so 2 bytes).

    Taught in: notebook 09 §6.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if dtype not in _DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPE_BYTES)}, not {dtype!r}")
    if seq_len < 1 or batch_size < 1 or lora_r < 1:
        raise ValueError(f"seq_len, batch_size and lora_r must be >= 1 (got {seq_len}, {batch_size}, {lora_r})")
    v = _variant(model)
    width = _DTYPE_BYTES[dtype] if method != "qlora" else 2
    n = v.n_params
    if method == "qlora":
        weights = estimate_memory(v, "4bit", compute_dtype="fp32").weights_bytes
    else:
        weights = n * _DTYPE_BYTES[dtype]
    adapters = 0 if method == "full" else lora_parameter_count(v, lora_r, target_modules)
    trainable = n if method == "full" else adapters
    gradients = n * _DTYPE_BYTES[dtype] if method == "full" else 4 * adapters
    optimizer = 8 * trainable

    h, kv, i = v.hidden_size, v.num_kv_heads * v.head_dim, v.intermediate_size
    per_layer = 7 * h + 2 * kv + 4 * i
    if method != "full" and lora_dropout:  # dropout keeps its own copy of each adapted module's input
        per_layer += sum(_module_shapes(v)[t][0] for t in target_modules)
    tokens = seq_len * batch_size
    layers = (v.num_layers * h + per_layer) if gradient_checkpointing else v.num_layers * per_layer
    activations = tokens * (layers * width + v.vocab_size * (width + 8))
    return TrainingMemory(model=v.name, method=method, n_params=n, trainable_params=trainable, seq_len=seq_len,
                          batch_size=batch_size, gradient_checkpointing=gradient_checkpointing,
                          weights_bytes=int(weights), adapters_bytes=4 * adapters, gradients_bytes=int(gradients),
                          optimizer_bytes=optimizer, activations_bytes=int(activations))
