"""The nano Code Llama: a small model trained the Code Llama way, shipped with the package.

Real Code Llama weights cannot be downloaded offline, in CI or on a laptop without a GPU, so
the course ships its own model. It is tiny (a few million parameters), but it is *real*: a
Llama-architecture model with Code Llama's conventions (SentencePiece BPE with byte fallback,
``<s>``=1 ``</s>``=2, the ``▁<PRE> ▁<SUF> ▁<MID> ▁<EOT>`` pieces, RoPE θ = 1e6), trained on
permissively licensed Python with the fill-in-the-middle transformation of the Code Llama paper.

This module holds the model and its training (notebook 08 walks through it): :class:`NanoConfig`,
:func:`llama_config`, :func:`train` (``scripts/train_nano.py`` is its command line),
:func:`evaluate_loss` and :func:`save_model`. The training data (corpus, tokenizer, FIM transformation)
is made by :mod:`codellama_course.nano_data`.

The shipped model lives in :data:`NANO_DIR`, a normal Hugging Face model folder.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .nano_data import fim_split, sample_document, token_stream
from .tokenizer import MetaTokenizer

NANO_DIR = Path(__file__).resolve().parent / "nano_model"
"""Folder of the shipped nano model (config, safetensors weights, tokenizer, model card)."""

# ---------------------------------------------------------------------------------------------
# Model and training
# ---------------------------------------------------------------------------------------------


@dataclass
class NanoConfig:
    """Architecture and training budget. Linear sizes suit bitsandbytes' CPU 4-bit kernel.

    Taught in: notebook 08 §5.
    """

    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 704
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    context: int = 512
    rope_theta: float = 1_000_000.0
    batch_size: int = 16
    learning_rate: float = 2.5e-3
    min_learning_rate: float = 1e-4
    warmup_steps: int = 150
    weight_decay: float = 0.1
    max_steps: int = 2200
    # bf16 mixed precision: None = where the CPU computes bf16 in hardware (hardware.cpu_has_native_bf16:
    # ~1.6x faster with AVX512-BF16; ~13x *slower* where torch emulates it, e.g. AVX2-only CPUs)
    bf16_autocast: bool | None = None
    span_lines: tuple[int, int] = (3, 80)  # lines per training document (see sample_document)
    log_uniform_spans: bool = False
    short_middle_rate: float = 0.0  # share of FIM documents with a short character-level middle (fim_split)
    line_middle_rate: float = 0.0  # share of FIM documents whose middle is 1-8 whole lines (fim_split)
    single_line_share: float = 0.0  # of those, the share with exactly one line
    seed: int = 0

    def uses_bf16_autocast(self) -> bool:
        """``bf16_autocast`` if set, else whether this CPU has native bf16."""
        if self.bf16_autocast is not None:
            return self.bf16_autocast
        from .hardware import cpu_has_native_bf16

        return cpu_has_native_bf16()

    def check_bitsandbytes_shapes(self) -> None:
        """bitsandbytes' CPU 4-bit kernel needs out_features % 32 == 0 and in_features % 64 == 0."""
        for name, size in (("hidden_size", self.hidden_size), ("intermediate_size", self.intermediate_size)):
            if size % 64:
                raise ValueError(f"{name}={size} must be a multiple of 64 for bitsandbytes' CPU 4-bit kernel")


def llama_config(cfg: NanoConfig, *, bos_token_id: int = 1, eos_token_id: int = 2):
    """A transformers ``LlamaConfig`` with Code Llama's conventions.

    Taught in: notebook 08 §5.
    """
    from transformers import LlamaConfig

    cfg.check_bitsandbytes_shapes()
    return LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_attention_heads,
        max_position_embeddings=cfg.context * 4,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )


def _batches(stream: Iterator[int], batch_size: int, context: int):
    import torch

    while True:
        flat = [next(stream) for _ in range(batch_size * (context + 1))]
        yield torch.tensor(flat, dtype=torch.long).view(batch_size, context + 1)  # CPU: train() moves it


def learning_rate(cfg: NanoConfig, step: int, progress: float | None = None) -> float:
    """Linear warm-up, then cosine decay to ``min_learning_rate`` at ``max_steps``.

    ``progress`` (0 → 1) overrides the step-based position in the decay, for a run whose
    length is set in seconds rather than steps.

    Taught in: notebook 08 §5.
    """
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    if progress is None:
        progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, progress)
    return cfg.min_learning_rate + 0.5 * (cfg.learning_rate - cfg.min_learning_rate) * (1 + math.cos(math.pi * progress))


@dataclass
class TrainingLog:
    """Loss per step (and held-out loss where evaluated), written as CSV.

    Taught in: notebook 08 §5.
    """

    rows: list[dict] = field(default_factory=list)

    def add(self, **row) -> None:
        self.rows.append(row)

    def save(self, path: Path) -> None:
        keys = sorted({k for row in self.rows for k in row}, key=lambda k: (k != "step", k))
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)


def evaluate_loss(model, codec: MetaTokenizer, files: Sequence[str], *, context: int, documents: int = 64, seed: int = 1234) -> dict[str, float]:
    """Held-out loss in nats/token: plain next-token, and on FIM middles (incl. ``▁<EOT>``).

    Taught in: notebook 08 §6.
    """
    import torch

    rng = random.Random(seed)
    device = next(model.parameters()).device  # the model may be on a GPU (load() puts it there)
    plain_sum = plain_n = fim_sum = fim_n = 0.0
    model.eval()
    with torch.no_grad():
        for _ in range(documents):
            doc = sample_document(files, rng, max_chars=context * 3)
            plain = [codec.bos_id, *codec.encode(doc)][: context + 1]
            prefix, middle, suffix = fim_split(doc, rng)
            head = [codec.bos_id, codec.prefix_id, *codec.encode(prefix), codec.suffix_id,
                    *codec.encode_infilling(suffix), codec.middle_id]
            tail = [*codec.encode_infilling(middle), codec.eot_id]
            fim = (head + tail)[-(context + 1):]
            for ids, start in ((plain, 1), (fim, len(fim) - len(tail))):
                x = torch.tensor([ids], device=device)
                logits = model(x[:, :-1]).logits[0]
                losses = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="none")[start - 1:]
                if start == 1:
                    plain_sum, plain_n = plain_sum + losses.sum().item(), plain_n + len(losses)
                else:
                    fim_sum, fim_n = fim_sum + losses.sum().item(), fim_n + len(losses)
    model.train()
    return {"val_loss": plain_sum / max(plain_n, 1), "val_fim_middle_loss": fim_sum / max(fim_n, 1)}


def train(
    cfg: NanoConfig,
    codec: MetaTokenizer,
    train_files: Sequence[str],
    validation_files: Sequence[str] = (),
    *,
    eval_every: int = 250,
    checkpoint=None,
    progress: bool = True,
    max_seconds: float | None = None,
    start_from=None,
):
    """Train a nano model; returns ``(model, TrainingLog)``.

    Seeded (data order and initialisation). ``start_from`` continues training an existing model
    (as Code Llama itself continued from Llama 2) instead of starting from random weights.
    ``checkpoint(model, step, log)`` is called after each evaluation, so a long run can be
    inspected or exported while it trains. With ``max_seconds`` the run ends after that long
    (or ``max_steps``, whichever comes first) and the learning rate decays over the time
    budget, so a run on shared cores still ends fully annealed.

    Taught in: notebook 08 §5.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    if start_from is None:
        model = LlamaForCausalLM(llama_config(cfg, bos_token_id=codec.bos_id, eos_token_id=codec.eos_id))
    else:
        model = start_from.float().train()
    device = next(model.parameters()).device  # start_from may live on a GPU
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate, betas=(0.9, 0.95),
    )
    stream = token_stream(codec, train_files, seed=cfg.seed, max_chars=cfg.context * 3,
                          span_lines=tuple(cfg.span_lines), log_uniform=cfg.log_uniform_spans,
                          short_middle_rate=cfg.short_middle_rate, line_middle_rate=cfg.line_middle_rate,
                          single_line_share=cfg.single_line_share)
    batches = _batches(stream, cfg.batch_size, cfg.context)
    bf16 = cfg.uses_bf16_autocast()
    log = TrainingLog()
    started = time.perf_counter()
    bar = tqdm(range(cfg.max_steps), desc="training nano", disable=not progress)
    warmed_up_at = None
    for step in bar:
        time_progress = None
        if max_seconds is not None and step >= cfg.warmup_steps:
            warmed_up_at = warmed_up_at or time.perf_counter()
            time_progress = (time.perf_counter() - warmed_up_at) / max(1.0, max_seconds - (warmed_up_at - started))
        lr = learning_rate(cfg, step, time_progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next(batches).to(device)
        loss = _next_token_loss(model, batch, bf16=bf16)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        elapsed = time.perf_counter() - started
        tokens = (step + 1) * cfg.batch_size * cfg.context
        row = {"step": step + 1, "loss": round(loss.item(), 4), "tokens": tokens, "seconds": round(elapsed, 1),
               "lr": round(lr, 6)}
        last = step + 1 == cfg.max_steps or (max_seconds is not None and elapsed >= max_seconds)
        if validation_files and ((step + 1) % eval_every == 0 or last):
            row.update({k: round(v, 4) for k, v in evaluate_loss(model, codec, validation_files, context=cfg.context).items()})
        log.add(**row)
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tokens / elapsed:.0f}")
        if checkpoint is not None and ("val_loss" in row or last):
            checkpoint(model, step + 1, log)
        if last:
            break
    model.eval()
    return model, log


def _next_token_loss(model, batch, *, bf16: bool = False):
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=batch[:, :-1]).logits.float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))


def save_model(model, tokenizer_dir: Path, out_dir: Path, *, meta: dict | None = None) -> None:
    """Save weights (safetensors), config, a generation config that also stops at ``▁<EOT>``, and tokenizer.

    Taught in: notebook 08 §5.
    """
    import shutil

    from transformers import GenerationConfig

    out_dir.mkdir(parents=True, exist_ok=True)
    codec = MetaTokenizer.from_file(tokenizer_dir / "tokenizer.model")
    model.generation_config = GenerationConfig(
        bos_token_id=codec.bos_id,
        eos_token_id=[codec.eos_id, codec.eot_id],
        pad_token_id=codec.eos_id,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer_dir / name).exists() and tokenizer_dir != out_dir:
            shutil.copy2(tokenizer_dir / name, out_dir / name)
    if meta is not None:
        (out_dir / "training_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
