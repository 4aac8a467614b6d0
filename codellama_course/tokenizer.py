"""The one SentencePiece adapter: Meta's reference tokenizer operations, for whatever tokenizer you hold.

Meta's reference code (``github.com/meta-llama/codellama``, ``llama/tokenizer.py``) wraps SentencePiece in a
``Tokenizer`` with ``encode(s, bos, eos)``, ``encode_infilling(s)`` (no implicit leading space),
``decode(t)``, ``decode_infilling(t)`` (keeps the first token's leading space) and the ids of the infilling
pieces. :class:`MetaTokenizer` is that class, and :func:`adapt` builds one from a transformers tokenizer
(its own ``tokenizer.model``, checked against it), a ``sentencepiece.SentencePieceProcessor`` or a path. Where
no ``tokenizer.model`` can be found, a private copy of the transformers tokenizer's vocabulary that
segments like SentencePiece stands in (with a warning, once).

The names of the special pieces are defined here, once, for the whole package.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "MetaTokenizer",
    "adapt",
    "is_transformers_tokenizer",
    "PREFIX_PIECE",
    "SUFFIX_PIECE",
    "MIDDLE_PIECE",
    "EOT_PIECE",
    "FIM_PIECES",
    "STEP_PIECE",
    "FILL_TOKEN",
    "SENTINEL",
    "INFILL_MODELS",
]

# --- pieces (names, never ids: ids are looked up in the vocabulary at hand) ------------------------
PREFIX_PIECE = "▁<PRE>"
SUFFIX_PIECE = "▁<SUF>"
MIDDLE_PIECE = "▁<MID>"
EOT_PIECE = "▁<EOT>"
#: Code Llama's infilling pieces, in the order Code Llama numbers them (32007-32010 there).
FIM_PIECES = (PREFIX_PIECE, SUFFIX_PIECE, MIDDLE_PIECE, EOT_PIECE)
#: CodeLlama-70b-Instruct's end-of-turn piece.
STEP_PIECE = "<step>"
#: The marker transformers' ``CodeLlamaTokenizer`` (and this course's helpers) split an infilling prompt at.
FILL_TOKEN = "<FILL_ME>"
#: Meta's anchor for encoding/decoding without the implicit leading space: ``encode("☺" + s)[2:]``.
SENTINEL = "☺"

INFILL_MODELS = (
    "CodeLlama-7b",
    "CodeLlama-13b",
    "CodeLlama-7b-Instruct",
    "CodeLlama-13b-Instruct",
)
_NO_INFILL = (
    "This tokenizer has no infilling pieces (▁<PRE> ▁<SUF> ▁<MID> ▁<EOT>); it looks like the plain "
    "32000-piece Llama 2 vocabulary of CodeLlama-34b and of every -Python variant, which were not "
    "trained to infill. Infilling works with " + ", ".join(INFILL_MODELS) + " (vocabulary of 32016 "
    "pieces) and with the course's nano model."
)

_WARNED: set[str] = set()


@functools.lru_cache(maxsize=16)
def _load_sp(path: str, _mtime_ns: int, _size: int) -> Any:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=path)


def _sp_from_file(path: str | os.PathLike[str]) -> Any:
    """One cached ``SentencePieceProcessor`` per file (reloaded when the file changes)."""
    p = Path(path).resolve()
    st = p.stat()
    return _load_sp(str(p), st.st_mtime_ns, st.st_size)


def _is_sp(obj: Any) -> bool:
    try:
        import sentencepiece as spm
    except ImportError:  # pragma: no cover - sentencepiece is a dependency
        return False
    return isinstance(obj, spm.SentencePieceProcessor)


def is_transformers_tokenizer(obj: Any) -> bool:
    """Whether ``obj`` looks like a transformers tokenizer (has the piece <-> id lookups)."""
    return hasattr(obj, "convert_tokens_to_ids") and hasattr(obj, "convert_ids_to_tokens")


class MetaTokenizer:
    """Meta's ``llama/tokenizer.py`` ``Tokenizer``: encode, encode_infilling, decode, decode_infilling.

    Backed by SentencePiece (``backend == "sentencepiece"``: exact by construction) or, where no
    ``tokenizer.model`` exists, by a private SentencePiece-like copy of a transformers vocabulary
    (``"transformers"``). ``prefix_id``, ``suffix_id``, ``middle_id``, ``eot_id`` and ``step_id`` are
    ``None`` where the vocabulary lacks the piece (Meta: ``piece_to_id(...)`` or ``None``).
    Build one with :meth:`from_file` or :func:`adapt`.

    Taught in: notebook 08 §1, notebook 08 §2.
    """

    def __init__(self, *, sp: Any = None, fast: Any = None, source: str, model_file: str | None = None):
        if (sp is None) == (fast is None):
            raise ValueError("MetaTokenizer needs exactly one backend: sp= (SentencePiece) or fast= (tokenizers)")
        self.sp = sp
        self.fast = fast  # tokenizers.Tokenizer (a private copy; never the user's object)
        self.source = source
        self.model_file = model_file
        self.backend = "sentencepiece" if sp is not None else "transformers"
        if sp is not None:
            self.vocab_size = sp.get_piece_size()
            self.bos_id, self.eos_id = sp.bos_id(), sp.eos_id()
        else:
            self.vocab_size = fast.get_vocab_size(with_added_tokens=False)
            self.bos_id, self.eos_id = self.piece_id("<s>"), self.piece_id("</s>")
        self.prefix_id, self.suffix_id, self.middle_id, self.eot_id = (self.piece_id(p) for p in FIM_PIECES)
        self.step_id = self.piece_id(STEP_PIECE)
        self._sentinel_ids = self.encode(SENTINEL)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> MetaTokenizer:
        """The adapter over a ``tokenizer.model`` file (Meta's ``Tokenizer(model_path)``)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no tokenizer.model at {str(path)!r}: pass the path of a SentencePiece model file")
        return cls(sp=_sp_from_file(path), source=str(path), model_file=str(path))

    # -- lookups ---------------------------------------------------------------------------------
    def piece_id(self, piece: str) -> int | None:
        """The id of ``piece``, or ``None`` when the vocabulary has no such piece."""
        if self.sp is not None:
            i = self.sp.piece_to_id(piece)
            return i if self.sp.id_to_piece(i) == piece else None
        return self.fast.token_to_id(piece)

    def id_piece(self, i: int) -> str:
        """The piece of id ``i`` (e.g. ``"▁return"``)."""
        if self.sp is not None:
            return self.sp.id_to_piece(i)
        return self.fast.id_to_token(i)

    def fim_ids(self) -> dict[str, int] | None:
        """``{piece: id}`` of the four infilling pieces, ``None`` for a vocabulary without them."""
        ids = dict(zip(FIM_PIECES, (self.prefix_id, self.suffix_id, self.middle_id, self.eot_id)))
        if all(v is None for v in ids.values()):
            return None
        missing = [p for p, v in ids.items() if v is None]
        if missing:
            raise ValueError(f"this tokenizer has only some infilling pieces (missing {missing}); {_NO_INFILL}")
        return ids  # type: ignore[return-value]

    def require_fim(self) -> dict[str, int]:
        """:meth:`fim_ids`, or a ``ValueError`` that says which models can infill."""
        ids = self.fim_ids()
        if ids is None:
            raise ValueError(_NO_INFILL)
        return ids

    # -- Meta's four operations ------------------------------------------------------------------
    def encode(self, s: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Meta's ``encode(s, bos, eos)``: with SentencePiece's implicit leading space."""
        if not isinstance(s, str):
            raise TypeError(f"expected a str, got {type(s).__name__}")
        if self.sp is not None:
            ids = list(self.sp.encode(s))
        else:
            ids = list(self.fast.encode(s, add_special_tokens=False).ids)
        return [self.bos_id] * bos + ids + [self.eos_id] * eos

    def encode_infilling(self, s: str) -> list[int]:
        """Meta's ``encode_infilling``: ``encode("☺" + s)`` minus the tokens of ``encode("☺")``, i.e.
        without the implicit leading space."""
        ids = self.encode(SENTINEL + s)
        k = len(self._sentinel_ids)
        if ids[:k] != self._sentinel_ids:  # the sentinel merged with the text: cannot happen on
            raise ValueError(  # Code Llama's vocabulary, where "☺" is a piece of its own
                f"cannot encode {s[:20]!r} without its leading space on this vocabulary "
                f"({SENTINEL!r} merges with the text)"
            )
        return ids[k:]

    def decode(self, ids: Sequence[int]) -> str:
        """Meta's ``decode``: SentencePiece's decoding (the first token's leading space is dropped)."""
        ids = [int(i) for i in ids]
        if self.sp is not None:
            return self.sp.decode(ids)
        return self.fast.decode(ids, skip_special_tokens=False).removeprefix(" ")

    def decode_infilling(self, ids: Sequence[int]) -> str:
        """Meta's ``decode_infilling``: decode keeping the leading space of the first token
        (``decode([☺] + ids)[1:]``); ids ``-1`` (Meta's padding) are skipped."""
        ids = [int(i) for i in ids if int(i) != -1]
        smile = self.piece_id(SENTINEL)
        if self.sp is not None and smile is not None:  # Meta's exact formula
            return self.sp.decode([smile] + ids)[1:]
        if self.sp is not None:
            head = self.sp.decode(list(self._sentinel_ids))
            text = self.sp.decode(list(self._sentinel_ids) + ids)
        else:  # the private pipeline keeps the implicit space; the sentinel's part is cut off
            head = self.fast.decode(list(self._sentinel_ids), skip_special_tokens=False)
            text = self.fast.decode(list(self._sentinel_ids) + ids, skip_special_tokens=False)
        if not text.startswith(head):
            raise ValueError("cannot decode these ids without dropping their leading space")
        return text[len(head):]

    def __repr__(self) -> str:
        return f"MetaTokenizer(backend={self.backend!r}, source={self.source!r}, vocab_size={self.vocab_size})"


# ================================================================================================
# From a transformers tokenizer (or a path) to the adapter
# ================================================================================================
def _warn_once(key: str, message: str) -> None:
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(message, UserWarning, stacklevel=5)


def _find_model_file(tok: Any) -> str | None:
    """The ``tokenizer.model`` a transformers tokenizer was built from, if it is on disk."""
    cands: list[Any] = [getattr(tok, "vocab_file", None)]
    init_kwargs = getattr(tok, "init_kwargs", None) or {}
    cands.append(init_kwargs.get("vocab_file"))
    name = getattr(tok, "name_or_path", None) or init_kwargs.get("name_or_path")
    if name:
        cands.append(Path(str(name)) / "tokenizer.model")
        if not Path(str(name)).exists():
            try:  # a Hub id: look in the local cache only, never the network
                from huggingface_hub import try_to_load_from_cache

                hit = try_to_load_from_cache(str(name), "tokenizer.model")
                if isinstance(hit, str):
                    cands.append(hit)
            except Exception:
                pass
    for c in cands:
        if c and isinstance(c, (str, os.PathLike)) and Path(c).is_file():
            return str(c)
    return None


def _check_same_vocab(tok: Any, sp: Any, model_file: str) -> None:
    """Make sure ``tokenizer.model`` really is this tokenizer's vocabulary (same ids)."""
    n = sp.get_piece_size()
    probe_ids = sorted({1, 2, *range(3, n, max(1, n // 97)), n - 1})
    theirs = tok.convert_ids_to_tokens(probe_ids)
    ours = [sp.id_to_piece(i) for i in probe_ids]
    bad = [(i, a, b) for i, a, b in zip(probe_ids, ours, theirs) if a != b]
    for piece in (*FIM_PIECES, STEP_PIECE):
        i = sp.piece_to_id(piece)
        if sp.id_to_piece(i) == piece:
            j = tok.convert_tokens_to_ids(piece)
            if j != i:
                bad.append((i, piece, f"{piece} -> {j}"))
    for attr, want in (("bos_token_id", sp.bos_id()), ("eos_token_id", sp.eos_id())):
        got = getattr(tok, attr, None)
        if got is not None and got != want:
            bad.append((want, attr, got))
    if bad:
        raise ValueError(
            f"{model_file} does not match this tokenizer's vocabulary (first differences: {bad[:3]}); "
            "pass the matching tokenizer.model or a SentencePieceProcessor instead"
        )


def _sentencepiece_like(backend: Any) -> Any:
    """A private ``tokenizers.Tokenizer`` that encodes like SentencePiece, from a backend's vocabulary.

    Built from the vocabulary alone, so it is independent of whatever state the user's tokenizer
    is in (CodeLlamaTokenizer swaps its normalizer on ``<FILL_ME>`` calls) and has no added tokens
    (SentencePiece treats ``"<s>"`` in text as text). Normalization as SentencePiece's: ``▁``
    prepended, spaces -> ``▁``. For a BPE vocabulary the whitespace-only merges (``▁▁``, ``▁▁▁``, ...)
    go last: in Llama's ``tokenizer.model`` those pieces carry score -1e9, so SentencePiece merges
    them after everything else (``"\\n    return"`` -> ``▁▁▁ ▁return``, not ``▁▁▁▁ return``).
    """
    from tokenizers import Tokenizer, decoders, normalizers

    model = backend.model
    spec = json.loads(backend.to_str()).get("model", {})
    if spec.get("type") == "BPE" and spec.get("merges"):
        from tokenizers.models import BPE

        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in spec["merges"]]
        blank = [m for m in merges if set(m[0] + m[1]) <= {"▁"}]
        merges = [m for m in merges if not set(m[0] + m[1]) <= {"▁"}] + blank
        model = BPE(
            spec["vocab"],
            merges,
            unk_token=spec.get("unk_token"),
            fuse_unk=bool(spec.get("fuse_unk", False)),
            byte_fallback=bool(spec.get("byte_fallback", False)),
        )
    fast = Tokenizer(model)
    fast.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    fast.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return fast


_FALLBACKS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def _fallback_from_hf(tok: Any) -> MetaTokenizer:
    backend = getattr(tok, "backend_tokenizer", None) or getattr(tok, "_tokenizer", None)
    if backend is None or not hasattr(backend, "model"):
        raise TypeError(
            f"{type(tok).__name__} has no tokenizer.model next to it and no `tokenizers` backend; "
            "pass the model's tokenizer.model (path or SentencePieceProcessor) instead"
        )
    name = str(getattr(tok, "name_or_path", "") or type(tok).__name__)
    _warn_once(
        name,
        f"codellama_course: no tokenizer.model found for {name!r}; building prompt ids from the "
        "transformers tokenizer's vocabulary instead of with SentencePiece (Meta's reference). "
        "They match SentencePiece on Code Llama's vocabulary as far as tested, but cannot be "
        "checked here: pass the repo's tokenizer.model for ids that are exact by construction.",
    )
    try:
        fast = _FALLBACKS.get(tok)
    except TypeError:  # not weak-referenceable
        fast = None
    if fast is None:
        fast = _sentencepiece_like(backend)
        try:
            _FALLBACKS[tok] = fast
        except TypeError:
            pass
    return MetaTokenizer(fast=fast, source=name)


def adapt(tokenizer: Any) -> MetaTokenizer:
    """Meta's tokenizer operations for ``tokenizer``: a transformers tokenizer, a
    ``sentencepiece.SentencePieceProcessor``, or a path (a ``.model`` file, a folder holding
    ``tokenizer.model``, or a Hub id in the local cache).

    A transformers tokenizer is read through its own ``tokenizer.model`` (checked to have the same
    ids); without one, through a private SentencePiece-like copy of its vocabulary (warned once). The
    tokenizer you pass is never changed.
    """
    if isinstance(tokenizer, MetaTokenizer):
        return tokenizer
    if _is_sp(tokenizer):
        return MetaTokenizer(sp=tokenizer, source="SentencePieceProcessor")
    if isinstance(tokenizer, (str, os.PathLike)):
        p = Path(tokenizer)
        if p.is_file():
            return MetaTokenizer.from_file(p)
        if p.is_dir() and (p / "tokenizer.model").is_file():
            f = p / "tokenizer.model"
            return MetaTokenizer(sp=_sp_from_file(f), source=str(p), model_file=str(f))
        if p.is_dir():
            from transformers import AutoTokenizer

            return adapt(AutoTokenizer.from_pretrained(str(p), local_files_only=True))
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(str(tokenizer), "tokenizer.model")
        except Exception:
            hit = None
        if isinstance(hit, str):
            return MetaTokenizer(sp=_sp_from_file(hit), source=str(tokenizer), model_file=hit)
        raise FileNotFoundError(f"no tokenizer.model at {str(tokenizer)!r} (nor in the local Hub cache)")
    if is_transformers_tokenizer(tokenizer):
        model_file = _find_model_file(tokenizer)
        if model_file is not None:
            sp = _sp_from_file(model_file)
            _check_same_vocab(tokenizer, sp, model_file)
            return MetaTokenizer(sp=sp, source=str(getattr(tokenizer, "name_or_path", model_file)), model_file=model_file)
        return _fallback_from_hf(tokenizer)
    raise TypeError(
        "expected a transformers tokenizer, a sentencepiece.SentencePieceProcessor or a path to "
        f"tokenizer.model, got {type(tokenizer).__name__}"
    )
