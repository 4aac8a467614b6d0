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
path (a ``.model`` file or a folder that holds ``tokenizer.model``), read through the one adapter
:func:`codellama_course.tokenizer.adapt`. They never change the tokenizer they are given, and never
depend on what was tokenized before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from .tokenizer import (  # the pieces are defined once, in tokenizer; importable from here too
    EOT_PIECE,
    FILL_TOKEN,
    FIM_PIECES,
    INFILL_MODELS,
    MIDDLE_PIECE,
    PREFIX_PIECE,
    STEP_PIECE,
    SUFFIX_PIECE,
    adapt,
    is_transformers_tokenizer,
)

__all__ = [
    "infill_ids",
    "fill_me",
    "decode_infill",
    "infill_stop_ids",
    "chat_prompt",
    "chat_ids",
    "chat_style",
    "chat_stop_ids",
    "HUB_CHAT_TEMPLATE",
    "HUB_CHAT_TEMPLATE_70B",
    "SPECIAL_TAGS",
    "PREFIX_PIECE",
    "SUFFIX_PIECE",
    "MIDDLE_PIECE",
    "EOT_PIECE",
    "FIM_PIECES",
    "STEP_PIECE",
    "FILL_TOKEN",
    "INFILL_MODELS",
]

ChatStyle = Literal["llama2", "70b"]
Message = Mapping[str, Any]

B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
#: Meta refuses a dialog when any message contains one of these (a plain substring test).
SPECIAL_TAGS = (B_INST, E_INST, "<<SYS>>", "<</SYS>>", STEP_PIECE)
UNSAFE_ERROR = "Error: special tags are not allowed as part of the prompt."


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

    Taught in: notebook 03 §2, notebook 03 §4.
    """
    if not isinstance(prefix, str) or not isinstance(suffix, str):
        raise TypeError("prefix and suffix must be str")
    enc = adapt(tokenizer)
    fim = enc.require_fim()
    bos, pre, suf, mid = enc.bos_id, fim[PREFIX_PIECE], fim[SUFFIX_PIECE], fim[MIDDLE_PIECE]
    if suffix_first:
        return [bos, pre, suf] + enc.encode_infilling(suffix) + [mid] + enc.encode(prefix)
    return [bos, pre] + enc.encode(prefix) + [suf] + enc.encode_infilling(suffix) + [mid]


def fill_me(text: str, marker: str = FILL_TOKEN) -> tuple[str, str]:
    """Split ``"prefix<FILL_ME>suffix"`` into ``(prefix, suffix)``; exactly one marker is allowed.

    Taught in: notebook 03 §5.
    """
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

    Taught in: notebook 03 §5.
    """
    return adapt(tokenizer).decode_infilling(ids)


def infill_stop_ids(tokenizer: Any) -> list[int]:
    """Ids that end an infill: ``[▁<EOT>, EOS]`` (Meta stops at ``▁<EOT>``).

    Taught in: notebook 03 §5.
    """
    enc = adapt(tokenizer)
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

    Taught in: notebook 04 §2, notebook 04 deep dive "CodeLlama-70B-Instruct, a different format".
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

    Taught in: notebook 04 deep dive "CodeLlama-70B-Instruct, a different format".
    """
    enc = adapt(tokenizer)
    if enc.step_id is not None:
        return "70b"
    if is_transformers_tokenizer(tokenizer):
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
    template = getattr(tokenizer, "chat_template", None) if is_transformers_tokenizer(tokenizer) else None
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

    Taught in: notebook 04 §2, notebook 04 deep dive "CodeLlama-70B-Instruct, a different format".
    """
    enc = adapt(tokenizer)
    style = _check_style(chat_style(tokenizer) if style is None else style)
    if style == "llama2":
        pairs, last = _llama2_turns(messages)
        ids: list[int] = []
        for u, a in pairs:
            ids += [enc.bos_id] + enc.encode(f"{B_INST} {u} {E_INST} {a} ") + [enc.eos_id]
        return ids + [enc.bos_id] + enc.encode(f"{B_INST} {last} {E_INST}")
    step = enc.step_id
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
    """Ids that end the assistant's answer: ``[EOS]`` (llama2) or ``[EOS, <step>]`` (70b).

    Taught in: notebook 04 §4, notebook 04 deep dive "CodeLlama-70B-Instruct, a different format".
    """
    enc = adapt(tokenizer)
    style = _check_style(chat_style(tokenizer) if style is None else style)
    if style == "llama2":
        return [enc.eos_id]
    step = enc.step_id
    if step is None:
        raise ValueError("style='70b' needs a vocabulary with the <step> piece")
    return [enc.eos_id, step]
