"""Fine-tuning with LoRA and QLoRA: the ecosystem's own tools (``peft``, the transformers ``Trainer``),
with the checks that make a run fail early and clearly, and resume where it stopped.

* :func:`lora_config` — a ``peft.LoraConfig`` whose target modules are checked against the model;
* :func:`train_lora` — ``transformers.Trainer`` with progress, checkpoints and resume from the last one;
* :func:`heldout_loss` — mean next-token loss over labelled examples (the measure of the lesson);
* :func:`qlora_bnb_config` / :func:`prepare_qlora` — the QLoRA recipe: NF4, double quantization, the
  compute dtype the GPU has, ``prepare_model_for_kbit_training`` and gradient checkpointing.

The same calls fine-tune nano on a CPU and Code Llama 7B on a 16 GB T4.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from .finetuning_data import IGNORE_INDEX
from .training_memory import LLAMA_LINEAR_MODULES

__all__ = ["LLAMA_LINEAR_MODULES", "lora_config", "train_lora", "heldout_loss", "qlora_bnb_config",
           "prepare_qlora", "adapter_size"]


def _linear_names(model: Any) -> set[str]:
    """Short names (``q_proj``) of the model's Linear layers, bitsandbytes' 4/8-bit ones included."""
    import torch

    names = set()
    for name, module in model.named_modules():
        if ".lora_" in name or name.endswith("base_layer"):  # inside a layer peft already wrapped
            continue
        if (isinstance(module, torch.nn.Linear) or hasattr(module, "base_layer")
                or type(module).__name__ in ("Linear4bit", "Linear8bitLt")):
            names.add(name.rsplit(".", 1)[-1])
    return names


def lora_config(model: Any, *, r: int = 8, alpha: int = 16, dropout: float = 0.05,
                target_modules: Sequence[str] = LLAMA_LINEAR_MODULES) -> Any:
    """A ``peft.LoraConfig`` for causal LM training, after checking that every target module exists in
    ``model`` (peft itself only fails later, or silently adapts fewer layers than asked).

    Taught in: notebook 09 §2.
    """
    from peft import LoraConfig

    if r < 1:
        raise ValueError(f"LoRA rank r must be >= 1 (got {r})")
    targets = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    if not targets:
        raise ValueError("target_modules is empty: name the Linear layers to adapt, e.g. ['q_proj', 'v_proj']")
    present = _linear_names(model)
    missing = [t for t in targets if t not in present]
    if missing:
        available = ", ".join(sorted(present - {"lm_head"})) or "none"
        raise ValueError(f"LoRA target modules {missing} do not exist in this model. Its Linear layers are: "
                         f"{available}.")
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none",
                      task_type="CAUSAL_LM")


class _Examples:
    """A map-style dataset over ``{"input_ids", "labels"}`` dicts (what the Trainer's DataLoader needs)."""

    def __init__(self, examples: Sequence[dict[str, list[int]]]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.examples[i]


def _collate(pad_id: int):
    """A batch of padded CPU tensors: the Trainer (and heldout_loss) move each batch to the model's device."""
    import torch

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # CPU on purpose: the caller moves it
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)  # CPU on purpose: the caller moves it
        mask = torch.zeros((len(batch), width), dtype=torch.long)  # CPU on purpose: the caller moves it
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n] = torch.tensor(b["input_ids"])  # CPU on purpose: the caller moves it
            labels[row, :n] = torch.tensor(b["labels"])  # CPU on purpose: the caller moves it
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


def _context(model: Any) -> int | None:
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def _check_examples(model: Any, examples: Sequence[dict[str, list[int]]], what: str) -> None:
    if not examples:
        raise ValueError(f"the {what} set is empty: build examples from at least one document "
                         "(codellama_course.build_examples)")
    longest = max(len(e["input_ids"]) for e in examples)
    context = _context(model)
    if context and longest > context:
        raise ValueError(f"an example in the {what} set has {longest} tokens, beyond the model's context of "
                         f"{context}: build the examples with seq_len <= {context}")


def _checkpointing_args(enabled: bool) -> dict[str, Any]:
    """Gradient checkpointing for ``TrainingArguments``, under the name this transformers uses (5.2x renamed
    it ``activation_checkpointing``; Colab's 5.9 knows only the old one). Nothing when disabled."""
    if not enabled:
        return {}
    from transformers import TrainingArguments

    name = ("activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
            else "gradient_checkpointing")
    return {name: True, f"{name}_kwargs": {"use_reentrant": False}}


def train_lora(model: Any, train_examples: Sequence[dict[str, list[int]]], output_dir: str | Path, *,
               max_steps: int = 60, batch_size: int = 8, learning_rate: float = 2e-3, warmup_steps: int = 5,
               save_steps: int = 20, logging_steps: int = 10, gradient_accumulation_steps: int = 1,
               gradient_checkpointing: bool = False, seed: int = 0, resume: bool = True,
               progress: bool = True, callbacks: Sequence[Any] = (), **training_args: Any) -> Any:
    """Train ``model`` (a peft model: only the adapters are trainable) with ``transformers.Trainer``.

    Logs the loss every ``logging_steps`` (with a progress bar when ``progress``), saves a checkpoint
    every ``save_steps`` into ``output_dir`` and, with ``resume``, continues from the last checkpoint
    found there: an interrupted run loses at most ``save_steps`` steps and ends where an uninterrupted
    run with the same seed ends. Mixed precision follows the GPU (bf16 where supported, else fp16);
    on a CPU it trains in the model's dtype. Returns the ``Trainer`` (``trainer.state.log_history``).

    Taught in: notebook 09 §3.
    """
    import torch
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    _check_examples(model, train_examples, "training")
    if max_steps < 1 or batch_size < 1:
        raise ValueError(f"max_steps and batch_size must be >= 1 (got {max_steps}, {batch_size})")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has no trainable parameters: wrap it with peft.get_peft_model(model, "
                         "codellama_course.lora_config(model)) first")
    output_dir = Path(output_dir)
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    args = TrainingArguments(
        output_dir=str(output_dir), max_steps=max_steps, per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps, learning_rate=learning_rate,
        warmup_steps=warmup_steps, lr_scheduler_type="cosine", weight_decay=0.0,
        logging_steps=logging_steps, save_strategy="steps", save_steps=save_steps, save_total_limit=2,
        seed=seed, data_seed=seed, report_to="none", disable_tqdm=not progress, use_cpu=not cuda,
        bf16=bf16, fp16=cuda and not bf16, dataloader_num_workers=0, remove_unused_columns=False,
        **_checkpointing_args(gradient_checkpointing), **training_args)
    pad_id = getattr(model.config, "pad_token_id", None)
    pad_id = pad_id if pad_id is not None else getattr(model.config, "eos_token_id", 0) or 0
    trainer = Trainer(model=model, args=args, train_dataset=_Examples(train_examples),
                      data_collator=_collate(pad_id), callbacks=list(callbacks))
    last = get_last_checkpoint(str(output_dir)) if resume and output_dir.is_dir() else None
    if last and progress:
        print(f"resuming from {Path(last).name}")
    trainer.train(resume_from_checkpoint=last)
    return trainer


def heldout_loss(model: Any, examples: Sequence[dict[str, list[int]]], *, batch_size: int = 16) -> float:
    """Mean next-token cross-entropy (nats per labelled token) of ``model`` on ``examples``.

    Taught in: notebook 09 §1, notebook 09 §5.
    """
    import torch

    _check_examples(model, examples, "held-out")
    collate = _collate(0)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collate(list(examples[start:start + batch_size])).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            labels = batch["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels,
                                                       ignore_index=IGNORE_INDEX, reduction="sum")
            total += losses.item()
            count += int((labels != IGNORE_INDEX).sum())
    model.train(was_training)
    return total / count if count else math.nan


def adapter_size(folder: str | Path) -> int:
    """Bytes of the adapter weights peft saved in ``folder`` (``save_pretrained``).

    Taught in: notebook 09 §4.
    """
    folder = Path(folder)
    files = [p for p in folder.glob("adapter_model.*") if p.is_file()]
    if not files:
        raise FileNotFoundError(f"no adapter_model.safetensors in {folder}: save one with "
                                "peft_model.save_pretrained(folder)")
    return sum(p.stat().st_size for p in files)


def qlora_bnb_config() -> Any:
    """QLoRA's quantization: NF4 weights, double quantization, and the compute dtype this GPU has
    (bf16 on Ampere and newer, fp16 on a T4 or V100).

    Taught in: notebook 09 §6.
    """
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def prepare_qlora(model: Any, *, gradient_checkpointing: bool = True) -> Any:
    """``peft.prepare_model_for_kbit_training`` on a 4-bit model: norms and embeddings in fp32, inputs that
    carry gradients, and gradient checkpointing (what makes 7B fit a 16 GB T4).

    Taught in: notebook 09 §6.
    """
    from peft import prepare_model_for_kbit_training

    if not getattr(model, "is_loaded_in_4bit", False) and not getattr(model, "is_loaded_in_8bit", False):
        raise ValueError("prepare_qlora expects a model loaded in 4-bit: load it with "
                         "quantization_config=codellama_course.qlora_bnb_config()")
    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False})
