"""Token inspection and comparison: what the lessons use to *show* where prompt ids differ.

:func:`inspect_tokenizer` says which backend builds a tokenizer's prompt ids and whether transformers
segments whitespace like SentencePiece; :func:`compare_ids` diffs two id lists piece by piece;
:func:`compare_infill` and :func:`compare_chat` put the package's ids (Meta's) next to what transformers'
own ``<FILL_ME>`` path and ``apply_chat_template`` produce.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..prompts import (
    HUB_CHAT_TEMPLATE,
    HUB_CHAT_TEMPLATE_70B,
    ChatStyle,
    Message,
    chat_ids,
    chat_style,
    infill_ids,
)
from ..tokenizer import FILL_TOKEN, adapt, is_transformers_tokenizer

__all__ = ["inspect_tokenizer", "TokenizerInfo", "compare_ids", "compare_infill", "compare_chat", "IdDiff"]

_PROBES = ("\n    return", " hello", "  x = 1", "[INST] How are you doing? [/INST]")


@dataclass(frozen=True)
class TokenizerInfo:
    """What :func:`inspect_tokenizer` found out about a tokenizer."""

    backend: str  # "sentencepiece" (exact) or "transformers" (fallback)
    source: str
    model_file: str | None
    vocab_size: int
    bos_id: int
    eos_id: int
    fim_ids: dict[str, int] | None
    step_id: int | None
    chat_style: str | None
    # probe text -> (SentencePiece ids, transformers ids) where both are available
    probes: dict[str, tuple[list[int] | None, list[int] | None]] = field(default_factory=dict)

    @property
    def can_infill(self) -> bool:
        return self.fim_ids is not None

    @property
    def transformers_agrees(self) -> bool | None:
        """Whether the transformers tokenizer segments the probes like SentencePiece (None: unknown)."""
        pairs = [(a, b) for a, b in self.probes.values() if a is not None and b is not None]
        return None if not pairs else all(a == b for a, b in pairs)


def inspect_tokenizer(tokenizer: Any) -> TokenizerInfo:
    """Check a tokenizer: which backend builds the ids, special ids, and whether the transformers
    tokenizer segments whitespace like SentencePiece (probes such as ``"\\n    return"``).

    Taught in: notebook 02 deep dive "the helper, checked against the raw calls", notebook 03 §3, notebook 04 exercises.
    """
    enc = adapt(tokenizer)
    try:
        fim = enc.fim_ids()
    except ValueError:
        fim = None
    try:
        style: str | None = chat_style(tokenizer)
    except ValueError:
        style = None
    probes: dict[str, tuple[list[int] | None, list[int] | None]] = {}
    for s in _PROBES:
        ours = enc.encode(s) if enc.sp is not None else None
        theirs = None
        if is_transformers_tokenizer(tokenizer):
            theirs = list(tokenizer.encode(s, add_special_tokens=False))
        probes[s] = (ours, theirs)
    return TokenizerInfo(
        backend=enc.backend,
        source=enc.source,
        model_file=enc.model_file,
        vocab_size=enc.vocab_size,
        bos_id=enc.bos_id,
        eos_id=enc.eos_id,
        fim_ids=fim,
        step_id=enc.step_id,
        chat_style=style,
        probes=probes,
    )


@dataclass(frozen=True)
class IdDiff:
    """Difference between two id lists (``ours`` = Meta's reference, ``theirs`` = e.g. transformers)."""

    ours: list[int]
    theirs: list[int]
    # (op, ours[i1:i2], theirs[j1:j2], i1, j1) for every non-equal block; op in replace/delete/insert
    changes: list[tuple[str, list[int], list[int], int, int]]
    pieces: dict[int, str] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return self.ours == self.theirs

    @property
    def first_difference(self) -> int | None:
        for k, (a, b) in enumerate(zip(self.ours, self.theirs)):
            if a != b:
                return k
        return None if len(self.ours) == len(self.theirs) else min(len(self.ours), len(self.theirs))

    def _fmt(self, ids: list[int]) -> str:
        if not self.pieces:
            return str(ids)
        return "[" + ", ".join(f"{i}:{self.pieces.get(i, '?')!r}" for i in ids) + "]"

    def __str__(self) -> str:
        if self.equal:
            return f"identical ({len(self.ours)} ids)"
        lines = [f"{len(self.changes)} difference(s): ours {len(self.ours)} ids, theirs {len(self.theirs)} ids"]
        for op, a, b, i, j in self.changes:
            lines.append(f"  at ours[{i}] / theirs[{j}] {op}: ours {self._fmt(a)}  theirs {self._fmt(b)}")
        return "\n".join(lines)

    def __bool__(self) -> bool:  # truthy when there *is* a difference
        return not self.equal


def compare_ids(ours: Sequence[int], theirs: Sequence[int], tokenizer: Any = None) -> IdDiff:
    """Diff two id lists; with a ``tokenizer`` the printout shows the pieces too. ``print()`` it.

    Taught in: notebook 03 deep dive "transformers 5's `<FILL_ME>` path, side by side", notebook 03 §6, notebook 04 §3.
    """
    a, b = [int(i) for i in ours], [int(i) for i in theirs]
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    changes = [(op, a[i1:i2], b[j1:j2], i1, j1) for op, i1, i2, j1, j2 in sm.get_opcodes() if op != "equal"]
    pieces: dict[int, str] = {}
    if tokenizer is not None:
        if is_transformers_tokenizer(tokenizer):
            ids = sorted(set(a) | set(b))
            pieces = dict(zip(ids, tokenizer.convert_ids_to_tokens(ids)))
        else:
            enc = adapt(tokenizer)
            pieces = {i: enc.id_piece(i) for i in set(a) | set(b)}
    return IdDiff(ours=a, theirs=b, changes=changes, pieces=pieces)


def _require_hf(tokenizer: Any, what: str) -> None:
    if not is_transformers_tokenizer(tokenizer):
        raise TypeError(f"{what} compares with what a transformers tokenizer produces; pass one (got {type(tokenizer).__name__})")


def compare_infill(tokenizer: Any, prefix: str, suffix: str) -> IdDiff:
    """Ours (:func:`infill_ids`) vs transformers' ``tokenizer(prefix + "<FILL_ME>" + suffix)``.

    Note: the transformers call itself changes a ``CodeLlamaTokenizer``'s state (its normalizer),
    which is one of the things this comparison is meant to show.

    Taught in: notebook 03 deep dive "transformers 5's `<FILL_ME>` path, side by side".
    """
    _require_hf(tokenizer, "compare_infill")
    theirs = tokenizer(prefix + FILL_TOKEN + suffix)["input_ids"]
    return compare_ids(infill_ids(tokenizer, prefix, suffix), theirs, tokenizer)


def compare_chat(tokenizer: Any, messages: Sequence[Message], *, style: ChatStyle | None = None) -> IdDiff:
    """Ours (:func:`chat_ids`) vs ``tokenizer.apply_chat_template(messages, return_dict=True)``.

    Uses the tokenizer's own ``chat_template`` when it has one for that style, else the Hub's
    (:data:`~codellama_course.prompts.HUB_CHAT_TEMPLATE` / :data:`~codellama_course.prompts.HUB_CHAT_TEMPLATE_70B`).

    Taught in: notebook 04 deep dive "`apply_chat_template` in transformers 5".
    """
    _require_hf(tokenizer, "compare_chat")
    style = chat_style(tokenizer) if style is None else style
    ours = chat_ids(tokenizer, messages, style=style)  # checks the style and the messages first
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, str) and ("Source:" in own and "[INST]" not in own) != (style == "70b"):
        own = None  # a template of the other format (70B-Instruct's tokenizer asked for style="llama2")
    template = own or (HUB_CHAT_TEMPLATE if style == "llama2" else HUB_CHAT_TEMPLATE_70B)
    enc_out = tokenizer.apply_chat_template(list(messages), chat_template=template, return_dict=True)
    return compare_ids(ours, list(enc_out["input_ids"]), tokenizer)
