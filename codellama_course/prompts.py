"""Token-exact Code Llama prompts: infilling (FIM) and the two Instruct chat formats.

Everything here reproduces the ids that Meta's reference implementation
(``github.com/meta-llama/codellama``: ``llama/tokenizer.py`` and ``llama/generation.py``)
feeds the model:

* :func:`infill_ids` - ``infilling_prompt_tokens`` (prefix-suffix-middle and suffix-prefix-middle);
* :func:`chat_ids` with ``style="llama2"`` - ``chat_completion`` (7B/13B/34B-Instruct);
* :func:`chat_ids` with ``style="70b"`` - ``dialog_prompt_tokens`` (CodeLlama-70b-Instruct).

Meta builds prompts *at the id level* with SentencePiece: every text segment is encoded on its
own (SentencePiece adds its implicit leading space ``▁`` to each), and special ids are spliced in
between. Tokenizing one big prompt string - what ``tokenizer("...<FILL_ME>...")`` and
``apply_chat_template`` do - gives different ids. So wherever the tokenizer's ``tokenizer.model``
is available we encode with ``sentencepiece`` exactly as Meta does; only when it is not do we
fall back to the transformers tokenizer (and warn, once, that ids may differ on whitespace runs).

The helpers accept a transformers tokenizer, a ``sentencepiece.SentencePieceProcessor``, or a
path (a ``.model`` file or a folder that holds ``tokenizer.model``). They never change the
tokenizer they are given, and never depend on what was tokenized before.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "infill_ids",
    "fill_me",
    "decode_infill",
    "infill_stop_ids",
    "chat_prompt",
    "chat_ids",
    "chat_style",
    "chat_stop_ids",
    "inspect_tokenizer",
    "TokenizerInfo",
    "compare_ids",
    "compare_infill",
    "compare_chat",
    "IdDiff",
    "HUB_CHAT_TEMPLATE",
    "HUB_CHAT_TEMPLATE_70B",
    "SPECIAL_TAGS",
]

ChatStyle = Literal["llama2", "70b"]
Message = Mapping[str, Any]

# --- pieces and tags (names, never ids: ids are looked up in the tokenizer at hand) ----------------
PREFIX_PIECE = "▁<PRE>"
SUFFIX_PIECE = "▁<SUF>"
MIDDLE_PIECE = "▁<MID>"
EOT_PIECE = "▁<EOT>"
FIM_PIECES = (PREFIX_PIECE, SUFFIX_PIECE, MIDDLE_PIECE, EOT_PIECE)
STEP_PIECE = "<step>"
FILL_TOKEN = "<FILL_ME>"
# Meta's encode_infilling: encode "☺" + text and drop the leading "▁" and "☺" tokens.
_SENTINEL = "☺"

B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
#: Meta refuses a dialog when any message contains one of these (a plain substring test).
SPECIAL_TAGS = (B_INST, E_INST, "<<SYS>>", "<</SYS>>", "<step>")
UNSAFE_ERROR = "Error: special tags are not allowed as part of the prompt."

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

#: ``chat_template`` of the Hub repos codellama/CodeLlama-{7b,13b,34b}-Instruct-hf
#: (``tokenizer_config.json``). Text as published on the Hub and quoted verbatim in public
#: collections of Hub tokenizer configs (found recorded for CodeLlama-34b-Instruct-hf; the
#: 7b/13b repos ship the same template). Kept as data so the lessons can render it with
#: ``apply_chat_template(..., chat_template=HUB_CHAT_TEMPLATE)`` and compare with ours.
HUB_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content | trim + ' ' + eos_token }}{% endif %}{% endfor %}"
)

#: ``chat_template`` of codellama/CodeLlama-70b-Instruct-hf, as published on the Hub (quoted in
#: public chat-template test suites). NOTE: it is *not* Meta's ``dialog_prompt_tokens``: no empty
#: system turn is inserted, turns are joined with ``" <step> "`` and "Source" has no leading
#: space. :func:`chat_prompt`/:func:`chat_ids` follow Meta; this is kept for comparison.
HUB_CHAT_TEMPLATE_70B = (
    "{% if messages[0]['role'] == 'system' %}{% set user_index = 1 %}{% else %}"
    "{% set user_index = 0 %}{% endif %}{% for message in messages %}"
    "{% if (message['role'] == 'user') != ((loop.index0 + user_index) % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 %}{{ '<s>' }}{% endif %}"
    "{% set content = 'Source: ' + message['role'] + '\\n\\n ' + message['content'] | trim %}"
    "{{ content + ' <step> ' }}{% endfor %}{{'Source: assistant\\nDestination: user\\n\\n '}}"
)

_PROBES = ("\n    return", " hello", "  x = 1", "[INST] How are you doing? [/INST]")
_WARNED: set[str] = set()


# ================================================================================================
# Tokenizer adapter
# ================================================================================================
@functools.lru_cache(maxsize=16)
def _load_sp(path: str, _mtime_ns: int, _size: int) -> Any:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=path)


def _sp_from_file(path: str | os.PathLike[str]) -> Any:
    p = Path(path).resolve()
    st = p.stat()
    return _load_sp(str(p), st.st_mtime_ns, st.st_size)


def _is_sp(obj: Any) -> bool:
    try:
        import sentencepiece as spm
    except ImportError:  # pragma: no cover - sentencepiece is a dependency
        return False
    return isinstance(obj, spm.SentencePieceProcessor)


def _is_hf(obj: Any) -> bool:
    return hasattr(obj, "convert_tokens_to_ids") and hasattr(obj, "convert_ids_to_tokens")


class _Encoder:
    """What the prompt builders need from a tokenizer: encode with/without the implicit space,
    and piece -> id lookups. Backed by SentencePiece (exact) or a private, fixed copy of a
    transformers backend (fallback)."""

    def __init__(self, *, sp: Any = None, fast: Any = None, source: str, model_file: str | None = None):
        self.sp = sp
        self.fast = fast  # tokenizers.Tokenizer (private copy; never the user's object)
        self.source = source
        self.model_file = model_file
        self.backend = "sentencepiece" if sp is not None else "transformers"
        if sp is not None:
            self.vocab_size = sp.get_piece_size()
            self.bos_id, self.eos_id = sp.bos_id(), sp.eos_id()
        else:
            self.vocab_size = fast.get_vocab_size(with_added_tokens=False)
            self.bos_id = self.piece_id("<s>")
            self.eos_id = self.piece_id("</s>")
        self.sentinel_ids = self.encode(_SENTINEL)

    # -- lookups ---------------------------------------------------------------------------------
    def piece_id(self, piece: str) -> int | None:
        if self.sp is not None:
            i = self.sp.piece_to_id(piece)
            return i if self.sp.id_to_piece(i) == piece else None
        return self.fast.token_to_id(piece)

    def id_piece(self, i: int) -> str:
        if self.sp is not None:
            return self.sp.id_to_piece(i)
        return self.fast.id_to_token(i)

    # -- encoding --------------------------------------------------------------------------------
    def encode(self, s: str) -> list[int]:
        """Meta's ``Tokenizer.encode(s, bos=False, eos=False)``: with the implicit leading space."""
        if not isinstance(s, str):
            raise TypeError(f"expected a str, got {type(s).__name__}")
        if self.sp is not None:
            return list(self.sp.encode(s))
        return list(self.fast.encode(s, add_special_tokens=False).ids)

    def encode_no_space(self, s: str) -> list[int]:
        """Meta's ``encode_infilling``: ``encode("☺" + s)`` minus the tokens of ``encode("☺")``."""
        ids = self.encode(_SENTINEL + s)
        k = len(self.sentinel_ids)
        if ids[:k] != self.sentinel_ids:  # the sentinel merged with the text: cannot happen on
            raise ValueError(  # Code Llama's vocabulary, where "☺" is a piece of its own
                f"cannot encode {s[:20]!r} without its leading space on this vocabulary "
                f"({_SENTINEL!r} merges with the text)"
            )
        return ids[k:]

    def decode_no_space(self, ids: Sequence[int]) -> str:
        """Meta's ``decode_infilling``: decode keeping the leading space of the first token."""
        ids = [int(i) for i in ids if int(i) != -1]
        smile = self.piece_id(_SENTINEL)
        if self.sp is not None and smile is not None:  # Meta's exact formula
            return self.sp.decode([smile] + ids)[1:]
        if self.sp is not None:
            head = self.sp.decode(list(self.sentinel_ids))
            text = self.sp.decode(list(self.sentinel_ids) + ids)
        else:  # the private pipeline keeps the implicit space; the sentinel's part is cut off
            head = self.fast.decode(list(self.sentinel_ids), skip_special_tokens=False)
            text = self.fast.decode(list(self.sentinel_ids) + ids, skip_special_tokens=False)
        if not text.startswith(head):
            raise ValueError("cannot decode these ids without dropping their leading space")
        return text[len(head):]

    # -- derived ---------------------------------------------------------------------------------
    def fim_ids(self) -> dict[str, int] | None:
        ids = {p: self.piece_id(p) for p in FIM_PIECES}
        if all(v is None for v in ids.values()):
            return None
        missing = [p for p, v in ids.items() if v is None]
        if missing:
            raise ValueError(f"this tokenizer has only some infilling pieces (missing {missing}); {_NO_INFILL}")
        return ids  # type: ignore[return-value]

    def require_fim(self) -> dict[str, int]:
        ids = self.fim_ids()
        if ids is None:
            raise ValueError(_NO_INFILL)
        return ids


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


def _fallback_from_hf(tok: Any) -> _Encoder:
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
    return _Encoder(fast=fast, source=name)


def _encoder(tokenizer: Any) -> _Encoder:
    if isinstance(tokenizer, _Encoder):
        return tokenizer
    if _is_sp(tokenizer):
        return _Encoder(sp=tokenizer, source="SentencePieceProcessor")
    if isinstance(tokenizer, (str, os.PathLike)):
        p = Path(tokenizer)
        if p.is_file():
            return _Encoder(sp=_sp_from_file(p), source=str(p), model_file=str(p))
        if p.is_dir() and (p / "tokenizer.model").is_file():
            f = p / "tokenizer.model"
            return _Encoder(sp=_sp_from_file(f), source=str(p), model_file=str(f))
        if p.is_dir():
            from transformers import AutoTokenizer

            return _encoder(AutoTokenizer.from_pretrained(str(p), local_files_only=True))
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(str(tokenizer), "tokenizer.model")
        except Exception:
            hit = None
        if isinstance(hit, str):
            return _Encoder(sp=_sp_from_file(hit), source=str(tokenizer), model_file=hit)
        raise FileNotFoundError(f"no tokenizer.model at {str(tokenizer)!r} (nor in the local Hub cache)")
    if _is_hf(tokenizer):
        model_file = _find_model_file(tokenizer)
        if model_file is not None:
            sp = _sp_from_file(model_file)
            _check_same_vocab(tokenizer, sp, model_file)
            return _Encoder(sp=sp, source=str(getattr(tokenizer, "name_or_path", model_file)), model_file=model_file)
        return _fallback_from_hf(tokenizer)
    raise TypeError(
        "expected a transformers tokenizer, a sentencepiece.SentencePieceProcessor or a path to "
        f"tokenizer.model, got {type(tokenizer).__name__}"
    )


# ================================================================================================
# Infilling
# ================================================================================================
def infill_ids(tokenizer: Any, prefix: str, suffix: str, *, suffix_first: bool = False) -> list[int]:
    """Prompt ids for filling in the code between ``prefix`` and ``suffix``, exactly as Meta builds them.

    PSM (default): ``[BOS, ▁<PRE>] + enc(prefix) + [▁<SUF>] + enc_no_space(suffix) + [▁<MID>]``.
    SPM (``suffix_first=True``): ``[BOS, ▁<PRE>, ▁<SUF>] + enc_no_space(suffix) + [▁<MID>] + enc(prefix)``.

    ``enc`` keeps SentencePiece's implicit leading space; ``enc_no_space`` is Meta's
    ``encode_infilling`` (``encode("☺" + s)[2:]``). Generate until ``▁<EOT>`` (see
    :func:`infill_stop_ids`) and decode with :func:`decode_infill`. Raises ``ValueError`` for a
    vocabulary without the infilling pieces (34B, Python variants).
    """
    if not isinstance(prefix, str) or not isinstance(suffix, str):
        raise TypeError("prefix and suffix must be str")
    enc = _encoder(tokenizer)
    fim = enc.require_fim()
    bos, pre, suf, mid = enc.bos_id, fim[PREFIX_PIECE], fim[SUFFIX_PIECE], fim[MIDDLE_PIECE]
    if suffix_first:
        return [bos, pre, suf] + enc.encode_no_space(suffix) + [mid] + enc.encode(prefix)
    return [bos, pre] + enc.encode(prefix) + [suf] + enc.encode_no_space(suffix) + [mid]


def fill_me(text: str, marker: str = FILL_TOKEN) -> tuple[str, str]:
    """Split ``"prefix<FILL_ME>suffix"`` into ``(prefix, suffix)``; exactly one marker is allowed."""
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    n = text.count(marker)
    if n != 1:
        raise ValueError(
            f"expected exactly one {marker} marker in the prompt, found {n}"
            + ("" if n else f"; put {marker} where the code should be filled in")
        )
    prefix, suffix = text.split(marker)
    return prefix, suffix


def decode_infill(tokenizer: Any, ids: Sequence[int]) -> str:
    """Decode generated middle ids keeping their leading space (Meta's ``decode_infilling``).

    Pass only the middle: cut at ``▁<EOT>``/EOS first. ``tokenizer.decode`` would drop the
    leading space of the first token.
    """
    return _encoder(tokenizer).decode_no_space(ids)


def infill_stop_ids(tokenizer: Any) -> list[int]:
    """Ids that end an infill: ``[▁<EOT>, EOS]`` (Meta stops at ``▁<EOT>``)."""
    enc = _encoder(tokenizer)
    return [enc.require_fim()[EOT_PIECE], enc.eos_id]


# ================================================================================================
# Chat
# ================================================================================================
def _validate_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    if not messages:
        raise ValueError("messages is empty: give at least one user message")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise TypeError(f"message {i} must be a mapping with 'role' and 'content'")
        if not isinstance(m["role"], str) or not isinstance(m["content"], str):
            raise TypeError(f"message {i}: 'role' and 'content' must be str")
        out.append(dict(m))
    # Meta: any special tag anywhere in any message -> the request is refused.
    for i, m in enumerate(out):
        found = [t for t in SPECIAL_TAGS if t in m["content"]]
        if found:
            raise ValueError(
                f"message {i} ({m['role']}) contains {found}: Meta's reference refuses prompts with "
                f"special tags {list(SPECIAL_TAGS)} in any message ({UNSAFE_ERROR!r})"
            )
    return out


_ORDER_HELP = "roles must be an optional 'system' message first, then 'user' and 'assistant' alternating (u/a/u/a/u...)"


def _llama2_turns(messages: Sequence[Message]) -> tuple[list[tuple[str, str]], str]:
    """Meta's ``chat_completion`` dialog handling -> ([(user, answer), ...], last_user)."""
    dialog = _validate_messages(messages)
    if dialog[0]["role"] == "system":
        if len(dialog) < 2:
            raise ValueError("a system message must be followed by a user message")
        dialog = [
            {"role": dialog[1]["role"], "content": B_SYS + dialog[0]["content"] + E_SYS + dialog[1]["content"]}
        ] + dialog[2:]
    for i, m in enumerate(dialog):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            offset = len(messages) - len(dialog)
            raise ValueError(f"{_ORDER_HELP}; message {i + offset} has role {m['role']!r}, expected {want!r}")
    if dialog[-1]["role"] != "user":
        raise ValueError(f"the last message must be from 'user', got {dialog[-1]['role']!r}")
    pairs = [(u["content"].strip(), a["content"].strip()) for u, a in zip(dialog[:-1:2], dialog[1::2])]
    return pairs, dialog[-1]["content"].strip()


def _seventy_b_turns(messages: Sequence[Message]) -> list[tuple[str, str | None]]:
    """Meta's ``dialog_prompt_tokens`` segments -> [(header, body or None), ...] (one per turn)."""
    dialog = _validate_messages(messages)
    if dialog[0]["role"] != "system":
        dialog = [{"role": "system", "content": ""}] + dialog
    for i, m in enumerate(dialog[1:], start=1):
        want = "user" if i % 2 == 1 else "assistant"
        if m["role"] != want:
            offset = len(messages) - len(dialog)
            raise ValueError(f"{_ORDER_HELP}; message {i + offset} has role {m['role']!r}, expected {want!r}")
    if dialog[-1]["role"] != "user":
        raise ValueError(f"the last message must be from 'user', got {dialog[-1]['role']!r}")
    turns = []
    for m in dialog:
        headers = [f"Source: {m['role'].strip()}"]
        if m.get("destination") is not None:
            headers.append(f"Destination: {str(m['destination']).strip()}")
        body = "\n\n " + m["content"].strip() if m["content"] else None
        turns.append((" " + "\n".join(headers), body))
    return turns


_REPLY_HEADER_70B = " Source: assistant\nDestination: user"
_REPLY_BODY_70B = "\n\n "


def _check_style(style: Any) -> ChatStyle:
    if style not in ("llama2", "70b"):
        raise ValueError(f"unknown chat style {style!r}: use 'llama2' (7B/13B/34B-Instruct) or '70b' (70B-Instruct)")
    return style  # type: ignore[return-value]


def chat_prompt(messages: Sequence[Message], *, style: ChatStyle = "llama2") -> str:
    """The chat prompt as text, with ``<s>``/``</s>``/``<step>`` written out.

    ``style="llama2"`` (7B/13B/34B-Instruct) equals the Hub's ``chat_template``
    (:data:`HUB_CHAT_TEMPLATE`) rendered with ``bos_token="<s>"``, ``eos_token="</s>"``, for every
    dialog Meta accepts. ``style="70b"`` concatenates the segments Meta's ``dialog_prompt_tokens``
    encodes. For display: tokenize with :func:`chat_ids`, not by encoding this string.
    """
    style = _check_style(style)
    if style == "llama2":
        pairs, last = _llama2_turns(messages)
        out = "".join(f"<s>{B_INST} {u} {E_INST} {a} </s>" for u, a in pairs)
        return out + f"<s>{B_INST} {last} {E_INST}"
    out = "<s>"
    for header, body in _seventy_b_turns(messages):
        out += header + (body or "") + STEP_PIECE
    return out + _REPLY_HEADER_70B + _REPLY_BODY_70B


def chat_style(tokenizer: Any) -> ChatStyle:
    """Infer the chat format: ``"70b"`` when the vocabulary has ``<step>``, else ``"llama2"``.

    Raises ``ValueError`` for a transformers tokenizer that is recognisably a base or -Python
    Code Llama (no chat format); pass ``style=`` explicitly to override.
    """
    enc = _encoder(tokenizer)
    if enc.piece_id(STEP_PIECE) is not None:
        return "70b"
    if _is_hf(tokenizer):
        name = str(getattr(tokenizer, "name_or_path", "") or "")
    elif isinstance(tokenizer, (str, os.PathLike)) and not Path(tokenizer).is_file():
        name = str(tokenizer)  # a model folder or Hub id (a bare .model file says nothing)
    else:
        name = ""
    base = Path(name).name.lower()
    if "codellama" in base.replace("-", "").replace("_", "") and "instruct" not in base:
        raise ValueError(
            f"{Path(name).name} is not an Instruct model and has no chat format; use a "
            "CodeLlama-*-Instruct model (or pass style='llama2' / style='70b' to build the prompt anyway)"
        )
    template = getattr(tokenizer, "chat_template", None) if _is_hf(tokenizer) else None
    if isinstance(template, str) and "Source:" in template and "[INST]" not in template:
        return "70b"
    return "llama2"


def chat_ids(tokenizer: Any, messages: Sequence[Message], *, style: ChatStyle | None = None) -> list[int]:
    """Prompt ids for a chat, exactly as Meta builds them.

    ``llama2``: each finished exchange ``BOS + enc("[INST] {user} [/INST] {answer} ") + EOS``, then
    ``BOS + enc("[INST] {user} [/INST]")``; a system message goes into the first user turn as
    ``<<SYS>>\\n{system}\\n<</SYS>>\\n\\n``. ``70b``: ``BOS``, then per turn (a system turn is always
    there) ``enc(" Source: {role}")`` [+ ``enc("\\n\\n " + content)``] + ``<step>``, then
    ``enc(" Source: assistant\\nDestination: user") + enc("\\n\\n ")``. Stop at :func:`chat_stop_ids`.
    """
    enc = _encoder(tokenizer)
    style = _check_style(chat_style(tokenizer) if style is None else style)
    if style == "llama2":
        pairs, last = _llama2_turns(messages)
        ids: list[int] = []
        for u, a in pairs:
            ids += [enc.bos_id] + enc.encode(f"{B_INST} {u} {E_INST} {a} ") + [enc.eos_id]
        return ids + [enc.bos_id] + enc.encode(f"{B_INST} {last} {E_INST}")
    step = enc.piece_id(STEP_PIECE)
    if step is None:
        raise ValueError(
            "style='70b' needs a vocabulary with the <step> piece (CodeLlama-70b-Instruct's); "
            "this tokenizer has none - use style='llama2'"
        )
    turns = _seventy_b_turns(messages)  # validate before encoding
    ids = [enc.bos_id]
    for header, body in turns:
        ids += enc.encode(header)
        if body is not None:
            ids += enc.encode(body)
        ids.append(step)
    return ids + enc.encode(_REPLY_HEADER_70B) + enc.encode(_REPLY_BODY_70B)


def chat_stop_ids(tokenizer: Any, style: ChatStyle | None = None) -> list[int]:
    """Ids that end the assistant's answer: ``[EOS]`` (llama2) or ``[EOS, <step>]`` (70b)."""
    enc = _encoder(tokenizer)
    style = _check_style(chat_style(tokenizer) if style is None else style)
    if style == "llama2":
        return [enc.eos_id]
    step = enc.piece_id(STEP_PIECE)
    if step is None:
        raise ValueError("style='70b' needs a vocabulary with the <step> piece")
    return [enc.eos_id, step]


# ================================================================================================
# Inspection and comparison (for the lessons)
# ================================================================================================
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
    tokenizer segments whitespace like SentencePiece (probes such as ``"\\n    return"``)."""
    enc = _encoder(tokenizer)
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
        if _is_hf(tokenizer):
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
        step_id=enc.piece_id(STEP_PIECE),
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
    """Diff two id lists; with a ``tokenizer`` the printout shows the pieces too. ``print()`` it."""
    a, b = [int(i) for i in ours], [int(i) for i in theirs]
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    changes = [(op, a[i1:i2], b[j1:j2], i1, j1) for op, i1, i2, j1, j2 in sm.get_opcodes() if op != "equal"]
    pieces: dict[int, str] = {}
    if tokenizer is not None:
        if _is_hf(tokenizer):
            ids = sorted(set(a) | set(b))
            pieces = dict(zip(ids, tokenizer.convert_ids_to_tokens(ids)))
        else:
            enc = _encoder(tokenizer)
            pieces = {i: enc.id_piece(i) for i in set(a) | set(b)}
    return IdDiff(ours=a, theirs=b, changes=changes, pieces=pieces)


def _require_hf(tokenizer: Any, what: str) -> None:
    if not _is_hf(tokenizer):
        raise TypeError(f"{what} compares with what a transformers tokenizer produces; pass one (got {type(tokenizer).__name__})")


def compare_infill(tokenizer: Any, prefix: str, suffix: str) -> IdDiff:
    """Ours (:func:`infill_ids`) vs transformers' ``tokenizer(prefix + "<FILL_ME>" + suffix)``.

    Note: the transformers call itself changes a ``CodeLlamaTokenizer``'s state (its normalizer),
    which is one of the things this comparison is meant to show.
    """
    _require_hf(tokenizer, "compare_infill")
    theirs = tokenizer(prefix + FILL_TOKEN + suffix)["input_ids"]
    return compare_ids(infill_ids(tokenizer, prefix, suffix), theirs, tokenizer)


def compare_chat(tokenizer: Any, messages: Sequence[Message], *, style: ChatStyle | None = None) -> IdDiff:
    """Ours (:func:`chat_ids`) vs ``tokenizer.apply_chat_template(messages, return_dict=True)``.

    Uses the tokenizer's own ``chat_template`` when it has one for that style, else the Hub's
    (:data:`HUB_CHAT_TEMPLATE` / :data:`HUB_CHAT_TEMPLATE_70B`).
    """
    _require_hf(tokenizer, "compare_chat")
    style = _check_style(chat_style(tokenizer) if style is None else style)
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, str) and ("Source:" in own and "[INST]" not in own) != (style == "70b"):
        own = None  # a template of the other format (70B-Instruct's tokenizer asked for style="llama2")
    template = own or (HUB_CHAT_TEMPLATE if style == "llama2" else HUB_CHAT_TEMPLATE_70B)
    enc_out = tokenizer.apply_chat_template(list(messages), chat_template=template, return_dict=True)
    return compare_ids(chat_ids(tokenizer, messages, style=style), list(enc_out["input_ids"]), tokenizer)
