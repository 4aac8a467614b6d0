"""Text <-> ids for generation: prompts encoded and continuations decoded as Meta's reference does.

Where the tokenizer has its ``tokenizer.model`` (found and checked by
:func:`codellama_course.tokenizer.adapt`), all of it goes through the one SentencePiece adapter: a prompt
is Meta's ``encode(text, bos=True)``, a continuation is decoded with ``decode_infilling`` (keeping the first
token's leading space, which ``tokenizer.decode`` drops). Any other tokenizer is used as transformers
uses it, with the same leading-space trick.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from ..tokenizer import EOT_PIECE, SENTINEL, STEP_PIECE, MetaTokenizer, adapt
from .results import EOS, EOT, STEP


class Codec:
    """Prompt encoding, continuation decoding and the named end ids for one transformers tokenizer."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        try:
            meta: MetaTokenizer | None = adapt(tokenizer)
        except Exception:  # not a Code Llama-shaped tokenizer: plain transformers behaviour
            meta = None
        self.meta = meta if meta is not None and meta.backend == "sentencepiece" else None
        self.backend = "sentencepiece" if self.meta is not None else "transformers"
        self.bos_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else (
            self.meta.bos_id if self.meta is not None else None)
        self.eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else (
            self.meta.eos_id if self.meta is not None else None)
        # ids -> names of the special stop pieces reported as finish reasons
        self.named_ids: dict[int, str] = {}
        if self.meta is not None:
            special = ((self.meta.eot_id, EOT), (self.meta.step_id, STEP))
        else:
            vocab = tokenizer.get_vocab()
            special = ((vocab.get(EOT_PIECE), EOT), (vocab.get(STEP_PIECE), STEP))
        for i, reason in special:
            if i is not None:
                self.named_ids[i] = reason
        if self.eos_id is not None:
            self.named_ids[self.eos_id] = EOS
        if self.meta is None:  # the anchor that keeps the first token's leading space (Meta's "☺" trick)
            self.anchor = list(tokenizer.encode(SENTINEL, add_special_tokens=False)) or \
                list(tokenizer.encode("a", add_special_tokens=False))
            self.head = tokenizer.decode(self.anchor, skip_special_tokens=True)

    def encode_prompt(self, text: str) -> list[int]:
        """Meta's ``encode(text, bos=True, eos=False)``."""
        if not isinstance(text, str):
            raise TypeError(f"a prompt must be a str, got {type(text).__name__}")
        if self.meta is not None:
            return [self.bos_id] + self.meta.encode(text)
        ids = list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        if self.bos_id is not None and (not ids or ids[0] != self.bos_id):
            ids = [self.bos_id] + ids
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Decode generated ids as a *continuation*: the first token's leading space is kept."""
        ids = [int(i) for i in ids]
        if not ids:
            return ""
        if self.meta is not None:
            if max(ids) < self.meta.vocab_size and min(ids) >= 0:
                try:
                    return self.meta.decode_infilling(ids)
                except ValueError:  # should not happen; never lose text silently
                    pass
            # ids added on top of tokenizer.model (e.g. <FILL_ME>)
            return self.tokenizer.decode(ids, skip_special_tokens=True)
        text = self.tokenizer.decode(self.anchor + ids, skip_special_tokens=True)
        if text.startswith(self.head):
            return text[len(self.head):]
        # should not happen; never lose text silently
        return self.tokenizer.decode(ids, skip_special_tokens=True)


_CODECS: "weakref.WeakKeyDictionary[Any, tuple[int, Codec]]" = weakref.WeakKeyDictionary()


def codec_for(tokenizer: Any) -> Codec:
    """The :class:`Codec` of ``tokenizer``, cached while its length (added tokens) stays the same."""
    key = len(tokenizer) if hasattr(tokenizer, "__len__") else 0
    try:
        hit = _CODECS.get(tokenizer)
    except TypeError:  # not weak-referenceable
        return Codec(tokenizer)
    if hit is not None and hit[0] == key:
        return hit[1]
    codec = Codec(tokenizer)
    _CODECS[tokenizer] = (key, codec)
    return codec
