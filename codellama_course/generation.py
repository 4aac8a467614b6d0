"""Generation helpers: code completion, infilling and chat, the transformers 5 way.

Taught in notebook 02 (:func:`complete`), notebook 03 (:func:`infill`) and notebook 04
(:func:`chat`, :class:`Chat`). Each helper is a thin layer over ``model.generate``; the lessons
show the raw ``generate`` call first and what the helper adds:

* prompt ids exactly as Meta's reference builds them (:mod:`codellama_course.prompts`:
  SentencePiece on the repo's ``tokenizer.model`` where it is available);
* ``n`` samples per prompt in **one** batched ``generate`` call (left padding + attention mask),
  which is what pass@k needs;
* stop sequences (``stop="python"``: the HumanEval stops) applied while generating *and* as a final
  cut, so the text never runs past them;
* the right stop ids (``▁<EOT>`` for infilling, ``<step>`` for CodeLlama-70b-Instruct);
* decoding that keeps the leading space of the first generated token (``tokenizer.decode`` drops it);
* seeds that do not disturb the caller's random state; streaming; the device taken from the model.

The knobs, once::

    temperature     0 (default) = greedy: always the most likely token, reproducible. > 0 = sampling:
                    logits are divided by the temperature before the softmax, so < 1 sharpens and
                    > 1 flattens the distribution. Code Llama's paper samples pass@1 at 0.1 and
                    pass@10/100 at 0.8.
    top_p           nucleus sampling (only when temperature > 0): sample from the smallest set of
                    tokens whose probabilities add up to top_p. 0.95 as in the paper. top-k is off
                    (transformers would otherwise apply its default top_k=50).
    max_new_tokens  how many tokens to *generate*. transformers' ``max_length`` counts the prompt
                    too, so with a long prompt it can leave no room at all (or the model's
                    generation_config may set a different one); prefer ``max_new_tokens``.
    num_samples     samples per prompt, generated together in one batched call.
    seed            makes sampling reproducible, without touching the global random state.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from . import prompts

__all__ = [
    "complete",
    "infill",
    "chat",
    "Chat",
    "Completion",
    "Infill",
    "ChatReply",
    "GenerationStream",
    "StopOnSequences",
    "TopP",
    "PYTHON_STOPS",
    "resolve_stops",
]

#: HumanEval's stop sequences (Codex paper; also Code Llama's evaluation): a completed Python
#: function body ends where the model starts a new top-level statement.
PYTHON_STOPS: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")

# finish reasons
STOP, EOS, EOT, STEP, LENGTH = "stop", "eos", "eot", "step", "length"


# ================================================================================================
# Results
# ================================================================================================
def _short(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[: n - 1] + "…")


@dataclass(repr=False)
class Completion:
    """One completion of ``prompt``.

    ``text``: the generated text (without the prompt), cut before any stop sequence.
    ``token_ids``: the ids the model generated, up to and including the one that ended generation
    (EOS, or the token that completed a stop sequence); no padding.
    ``finish_reason``: ``"stop"`` (a stop sequence; see ``stop_sequence``), ``"eos"``/``"eot"``
    (an end id), or ``"length"`` (``max_new_tokens`` reached).
    """

    prompt: str
    text: str
    token_ids: list[int]
    finish_reason: str
    stop_sequence: str | None = None
    prompt_ids: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (f"Completion(text={_short(self.text)}, finish_reason={self.finish_reason!r}, "
                f"tokens={len(self.token_ids)})")


@dataclass(repr=False)
class Infill:
    """One infilling result. ``text`` is the whole file: ``prefix + middle + suffix``."""

    prefix: str
    suffix: str
    middle: str
    token_ids: list[int]
    finish_reason: str
    stop_sequence: str | None = None
    prompt_ids: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.prefix + self.middle + self.suffix

    @property
    def stopped_at_eot(self) -> bool:
        """True when the model closed the middle itself with ``▁<EOT>`` (a trustworthy infill)."""
        return self.finish_reason == EOT

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (f"Infill(middle={_short(self.middle)}, stopped_at_eot={self.stopped_at_eot}, "
                f"finish_reason={self.finish_reason!r}, tokens={len(self.token_ids)})")


@dataclass(repr=False)
class ChatReply:
    """The assistant's answer. ``messages`` is the conversation *including* this answer, ready for
    the next user turn."""

    text: str
    token_ids: list[int]
    finish_reason: str
    messages: list[dict[str, str]]
    style: str
    prompt_ids: list[int] = field(default_factory=list)
    stop_sequence: str | None = None

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (f"ChatReply(text={_short(self.text)}, finish_reason={self.finish_reason!r}, "
                f"style={self.style!r}, turns={len(self.messages)})")


# ================================================================================================
# Text <-> ids for one tokenizer
# ================================================================================================
_SENTINEL = "☺"  # Meta's decode_infilling anchor


class _Codec:
    """Prompt encoding and continuation decoding for one tokenizer.

    Uses SentencePiece on the tokenizer's own ``tokenizer.model`` (found and checked against the
    tokenizer by :func:`codellama_course.prompts.inspect_tokenizer`) - what Meta's reference and the
    nano training data use - and falls back to the transformers tokenizer when there is none.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.sp = None
        try:
            info = prompts.inspect_tokenizer(tokenizer)
        except Exception:  # not a Code Llama-shaped tokenizer: plain transformers behaviour
            info = None
        if info is not None and info.backend == "sentencepiece" and info.model_file:
            self.sp = prompts._sp_from_file(info.model_file)  # one cached processor per file
        self.backend = "sentencepiece" if self.sp is not None else "transformers"
        self.sp_size = self.sp.get_piece_size() if self.sp is not None else 0
        self.bos_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else (
            self.sp.bos_id() if self.sp is not None else None)
        self.eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else (
            self.sp.eos_id() if self.sp is not None else None)
        # ids -> names of the special stop pieces we report as finish reasons
        self.named_ids: dict[int, str] = {}
        for piece, reason in (("▁<EOT>", EOT), ("<step>", STEP)):
            i = self._piece_id(piece)
            if i is not None:
                self.named_ids[i] = reason
        if self.eos_id is not None:
            self.named_ids[self.eos_id] = EOS
        # the anchor that keeps the first token's leading space when decoding (Meta's "☺" trick)
        if self.sp is not None:
            smile = self._piece_id(_SENTINEL)
            self.anchor = [smile] if smile is not None else list(self.sp.encode(_SENTINEL))
            self.head = self.sp.decode(self.anchor)
        else:
            self.anchor = list(tokenizer.encode(_SENTINEL, add_special_tokens=False)) or \
                list(tokenizer.encode("a", add_special_tokens=False))
            self.head = tokenizer.decode(self.anchor, skip_special_tokens=True)

    def _piece_id(self, piece: str) -> int | None:
        if self.sp is not None:
            i = self.sp.piece_to_id(piece)
            return i if self.sp.id_to_piece(i) == piece else None
        vocab = self.tokenizer.get_vocab()
        return vocab.get(piece)

    def encode_prompt(self, text: str) -> list[int]:
        """Meta's ``encode(text, bos=True, eos=False)``."""
        if not isinstance(text, str):
            raise TypeError(f"a prompt must be a str, got {type(text).__name__}")
        if self.sp is not None:
            return [self.bos_id] + list(self.sp.encode(text))
        ids = list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        if self.bos_id is not None and (not ids or ids[0] != self.bos_id):
            ids = [self.bos_id] + ids
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Decode generated ids as a *continuation*: the first token's leading space is kept."""
        ids = [int(i) for i in ids]
        if not ids:
            return ""
        if self.sp is not None and max(ids) < self.sp_size and min(ids) >= 0:
            text = self.sp.decode(self.anchor + ids)
        elif self.sp is not None:  # ids added on top of tokenizer.model (e.g. <FILL_ME>)
            return self.tokenizer.decode(ids, skip_special_tokens=True)
        else:
            text = self.tokenizer.decode(self.anchor + ids, skip_special_tokens=True)
        if text.startswith(self.head):
            return text[len(self.head):]
        # should not happen; never lose text silently
        return self.tokenizer.decode(ids, skip_special_tokens=True)


_CODECS: "weakref.WeakKeyDictionary[Any, tuple[int, _Codec]]" = weakref.WeakKeyDictionary()


def _codec(tokenizer: Any) -> _Codec:
    key = len(tokenizer) if hasattr(tokenizer, "__len__") else 0
    try:
        hit = _CODECS.get(tokenizer)
    except TypeError:  # not weak-referenceable
        return _Codec(tokenizer)
    if hit is not None and hit[0] == key:
        return hit[1]
    codec = _Codec(tokenizer)
    _CODECS[tokenizer] = (key, codec)
    return codec


# ================================================================================================
# Stop sequences
# ================================================================================================
def resolve_stops(stop: None | str | Sequence[str]) -> list[str]:
    """``None`` -> ``[]``; ``"python"`` -> :data:`PYTHON_STOPS`; a string -> ``[it]``; a list -> itself."""
    if stop is None:
        return []
    if isinstance(stop, str):
        return list(PYTHON_STOPS) if stop == "python" else [stop]
    stops = list(stop)
    for s in stops:
        if not isinstance(s, str) or not s:
            raise ValueError(f"stop sequences must be non-empty strings, got {s!r}")
    return stops


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """Cut ``text`` before the earliest stop sequence; returns (text, the stop found or None)."""
    best, found = len(text), None
    for s in stops:
        i = text.find(s)
        if i != -1 and i < best:
            best, found = i, s
    return text[:best], found


def _stopping_criteria_base():
    from transformers import StoppingCriteria

    return StoppingCriteria


class StopOnSequences(_stopping_criteria_base()):  # type: ignore[misc]
    """A ``StoppingCriteria`` that ends each row as soon as its *generated* text contains a stop
    sequence (the prompt is never searched). Per-row: other rows keep generating.

    Only the last few tokens are decoded at each step (enough to cover the longest stop), so the
    cost does not grow with the length of the output. ``stopped_at[row]`` records the sequence
    length at which a row was stopped.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], stops: Sequence[str], prompt_length: int,
                 end_ids: Sequence[int] = ()):
        self.decode = decode
        self.stops = list(stops)
        self.prompt_length = prompt_length
        self.end_ids = set(int(i) for i in end_ids)
        self.window = 4 * max(len(s) for s in self.stops) + 4  # a character can take 4 byte tokens
        self.stopped_at: dict[int, int] = {}
        self.ended: set[int] = set()

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        length = input_ids.shape[1]
        start = max(self.prompt_length, length - self.window)
        tail = input_ids[:, start:].tolist()
        done = []
        for row, ids in enumerate(tail):
            if row in self.stopped_at or row in self.ended:
                done.append(True)
                continue
            if ids and ids[-1] in self.end_ids:  # ended by EOS/EOT; generate pads it from now on
                self.ended.add(row)
                done.append(True)
                continue
            text = self.decode(ids)
            hit = any(s in text for s in self.stops)
            if hit:
                self.stopped_at[row] = length
            done.append(hit)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


# ================================================================================================
# Streaming
# ================================================================================================
def _text_iterator_streamer():
    from transformers import TextIteratorStreamer

    return TextIteratorStreamer


class _ContinuationStreamer(_text_iterator_streamer()):  # type: ignore[misc]
    """``TextIteratorStreamer`` that decodes like :class:`_Codec` (keeps the first leading space,
    hides end ids such as ``▁<EOT>``) and holds back incomplete UTF-8 characters."""

    def __init__(self, tokenizer: Any, codec: _Codec, end_ids: Sequence[int], timeout: float | None = None):
        super().__init__(tokenizer, skip_prompt=True, timeout=timeout)
        self.codec = codec
        self.end_ids = set(int(i) for i in end_ids)
        self.finished = False

    def put(self, value):
        if len(value.shape) > 1 and value.shape[0] > 1:
            raise ValueError("streaming works with one prompt and one sample")
        if len(value.shape) > 1:
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        if self.finished:
            return
        for i in value.tolist():
            if i in self.end_ids:
                self.finished = True
                break
            self.token_cache.append(i)
        text = self.codec.decode(self.token_cache)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for its other bytes
            return
        new = text[self.print_len:]
        self.print_len = len(text)
        if new:
            self.on_finalized_text(new)

    def end(self):
        text = self.codec.decode(self.token_cache)
        new = text[self.print_len:]
        self.token_cache, self.print_len = [], 0
        self.next_tokens_are_prompt = True
        self.on_finalized_text(new, stream_end=True)


class GenerationStream:
    """Text chunks as they are generated; iterate it, then read ``.result``.

    ::

        stream = complete(model, tokenizer, "def fib(n):", stream=True)
        for chunk in stream:
            print(chunk, end="", flush=True)
        stream.result          # the Completion (same as complete(..., stream=False) would give)

    Chunks never include a stop sequence or what follows it: text that could be the start of a stop
    sequence is held back until it is clear it is not.
    """

    def __init__(self, streamer: _ContinuationStreamer, thread: threading.Thread, box: dict,
                 finish: Callable[[], Any], stops: Sequence[str], lstrip: bool = False):
        self._streamer, self._thread, self._box, self._finish = streamer, thread, box, finish
        self._stops = list(stops)
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._lstrip = lstrip
        self._result: Any = None
        self._consumed = False
        self.text = ""

    def __iter__(self) -> Iterator[str]:
        if self._consumed:
            raise RuntimeError("this stream was already consumed; use .result")
        self._consumed = True
        full, emitted, cut = "", 0, False
        try:
            for chunk in self._streamer:
                if cut:
                    continue  # drain: generation stops on its own at the stop sequence
                full += chunk
                if self._lstrip and not emitted:
                    full = full.lstrip()
                head, found = _cut_at_stop(full, self._stops)
                if found is not None:
                    cut = True
                    safe = len(head)
                else:
                    safe = max(emitted, len(full) - self._hold)
                if safe > emitted:
                    piece = full[emitted:safe]
                    emitted = safe
                    self.text += piece
                    yield piece
            if not cut and len(full) > emitted:
                self.text += full[emitted:]
                yield full[emitted:]
        finally:
            self._thread.join()
        if "error" in self._box:
            raise self._box["error"]
        self._result = self._finish()

    @property
    def result(self) -> Any:
        """The finished result; consumes the stream first if nobody did."""
        if self._result is None:
            if not self._consumed:
                for _ in self:
                    pass
            else:
                self._thread.join()
                if "error" in self._box:
                    raise self._box["error"]
                self._result = self._finish()
        return self._result

    def __repr__(self) -> str:
        return f"GenerationStream(text so far={_short(self.text)})"


# ================================================================================================
# The core: one batched generate call
# ================================================================================================
def _device(model: Any):
    dev = getattr(model, "device", None)
    if dev is not None:
        return dev
    return next(model.parameters()).device


def _check_knobs(max_new_tokens: int, temperature: float, top_p: float, num_samples: int) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if num_samples > 1 and temperature == 0:
        raise ValueError(
            f"num_samples={num_samples} with temperature=0 (greedy) would give {num_samples} identical "
            "samples; set temperature > 0 (e.g. 0.8 for pass@10) or use num_samples=1")


def _end_ids(model: Any, codec: _Codec, extra: Sequence[int] | None) -> list[int]:
    """The ids that end generation: the model's generation_config EOS ids (+ the tokenizer's)."""
    if extra is not None:
        return list(dict.fromkeys(int(i) for i in extra))
    ids: list[int] = []
    cfg = getattr(model, "generation_config", None)
    eos = getattr(cfg, "eos_token_id", None) if cfg is not None else None
    if isinstance(eos, int):
        ids.append(eos)
    elif eos is not None:
        ids.extend(int(i) for i in eos)
    if codec.eos_id is not None:
        ids.append(codec.eos_id)
    return list(dict.fromkeys(ids))


@dataclass
class _Raw:
    token_ids: list[int]
    text: str
    finish_reason: str
    stop_sequence: str | None


def _pad_batch(rows: Sequence[Sequence[int]], pad_id: int, device: Any):
    import torch

    width = max(len(r) for r in rows)
    ids = [[pad_id] * (width - len(r)) + list(r) for r in rows]  # left padding: every prompt ends at the last column
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    return (torch.tensor(ids, dtype=torch.long, device=device),
            torch.tensor(mask, dtype=torch.long, device=device))


def _logits_processor_base():
    from transformers import LogitsProcessor

    return LogitsProcessor


class TopP(_logits_processor_base()):  # type: ignore[misc]
    """Nucleus (top-p) filtering that keeps the same tokens as transformers' ``TopPLogitsWarper``
    (up to float rounding exactly at the threshold), but cheaper on a CPU.

    ``TopPLogitsWarper`` sorts the whole vocabulary for every row at every step; on a CPU that sort
    costs more than the nano model's forward pass once ten samples are generated together. The
    nucleus of a trained model almost always lies within its few hundred most likely tokens, so this
    looks at those first (``topk``) and sorts everything only for a step where they do not add up to
    ``top_p``. Sampling itself stays transformers' (softmax + multinomial over the filtered logits).
    """

    def __init__(self, top_p: float, k: int = 256):
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        self.top_p, self.k = float(top_p), int(k)

    def __call__(self, input_ids, scores):
        import torch

        probs = scores.float().softmax(dim=-1)
        k = min(self.k, scores.shape[-1])
        vals, idx = probs.topk(k, dim=-1)  # sorted, most likely first
        remove = self._remove(vals, idx, scores.shape)
        short = (vals.sum(dim=-1) < self.top_p).nonzero().flatten()  # rows whose nucleus is wider
        if k < scores.shape[-1] and short.numel():
            vals, idx = probs[short].sort(dim=-1, descending=True)
            remove[short] = self._remove(vals, idx, (short.numel(), scores.shape[-1]))
        return scores.masked_fill(remove, -float("inf"))

    def _remove(self, vals, idx, shape):
        import torch

        # transformers removes a token when the mass of the tokens *below* it, itself included, is
        # <= 1 - top_p, i.e. keeps it when the mass *above* it is < top_p; the top token always stays
        keep = (vals.cumsum(dim=-1) - vals) < self.top_p
        keep[:, 0] = True
        remove = torch.ones(shape, dtype=torch.bool, device=vals.device)
        return remove.scatter_(1, idx, ~keep)


def _generate_kwargs(max_new_tokens: int, temperature: float, top_p: float, num_samples: int,
                     end_ids: Sequence[int], pad_id: int, extra: Mapping[str, Any]) -> dict[str, Any]:
    from transformers import LogitsProcessorList

    kw: dict[str, Any] = dict(max_new_tokens=max_new_tokens, eos_token_id=list(end_ids), pad_token_id=pad_id)
    extra = dict(extra)
    if temperature > 0:
        # temperature and top-k off in transformers; our TopP runs after its temperature warper
        kw.update(do_sample=True, temperature=float(temperature), top_p=1.0, top_k=0)
        if top_p < 1:
            custom = list(extra.pop("logits_processor", None) or [])
            kw["logits_processor"] = LogitsProcessorList(custom + [TopP(top_p)])
    else:
        kw.update(do_sample=False)
    if num_samples > 1:
        kw["num_return_sequences"] = num_samples
    kw.update(extra)
    return kw


def _rng(model: Any, seed: int | None):
    """Seed the random state for this call only (the caller's RNG state is restored after)."""
    import contextlib

    import torch

    if seed is None:
        return contextlib.nullcontext()
    dev = _device(model)
    devices = [dev.index or 0] if dev.type == "cuda" else []

    @contextlib.contextmanager
    def seeded():
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    return seeded()


def _cache_keyword(model: Any) -> str:
    """What this transformers version calls the KV-cache argument of ``forward``/``generate``: ``cache``
    (newer 5.x releases, where ``past_key_values`` is deprecated) or ``past_key_values`` (5.9, Colab's)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _shared_prefill(model: Any, input_ids: Any, attention_mask: Any, n: int):
    """Run the prompts through the model once and copy the KV cache ``n`` times.

    ``generate(num_return_sequences=n)`` would copy the prompts first and compute each one ``n``
    times. Returns ``(input_ids, attention_mask, cache)`` expanded to ``n`` rows per prompt (the cache
    holds all but the last prompt token, which ``generate`` feeds itself), or the inputs unchanged
    and ``None`` when this model's cache cannot be prepared this way.
    """
    import torch

    if input_ids.shape[1] < 2:
        return input_ids, attention_mask, None
    try:
        from transformers import DynamicCache

        cache = DynamicCache(config=model.config)
        # left padding: positions count real tokens only (as generate computes them)
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            model(input_ids=input_ids[:, :-1], attention_mask=attention_mask[:, :-1],
                  position_ids=positions[:, :-1], use_cache=True, **{_cache_keyword(model): cache})
        cache.batch_repeat_interleave(n)
    except Exception:  # an architecture whose cache does not work like this: let generate do it
        return input_ids, attention_mask, None
    return input_ids.repeat_interleave(n, dim=0), attention_mask.repeat_interleave(n, dim=0), cache


def _finish_row(gen: list[int], codec: _Codec, end_ids: set[int], stops: Sequence[str],
                stopped_len: int | None, max_new_tokens: int) -> _Raw:
    """Turn one generated row (padding included) into ids, text and a finish reason."""
    cut = next((k for k, i in enumerate(gen) if i in end_ids), None)
    if cut is not None:
        ids, body, reason = gen[: cut + 1], gen[:cut], codec.named_ids.get(gen[cut], EOS)
    elif stopped_len is not None:
        ids = body = gen[:stopped_len]
        reason = LENGTH
    else:
        ids = body = gen[:max_new_tokens]
        reason = LENGTH
    text = codec.decode(body)
    text, found = _cut_at_stop(text, stops)
    if found is not None:
        reason = STOP
    return _Raw(list(ids), text, reason, found)


def _run(model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], *, codec: _Codec,
         max_new_tokens: int, temperature: float, top_p: float, num_samples: int, stops: Sequence[str],
         end_ids: Sequence[int], seed: int | None, extra: Mapping[str, Any]) -> list[list[_Raw]]:
    """Generate ``num_samples`` continuations of every prompt in one ``generate`` call."""
    from transformers import StoppingCriteriaList

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    input_ids, attention_mask = _pad_batch(prompt_ids, pad_id, _device(model))
    width = input_ids.shape[1]
    extra = dict(extra)
    criteria = list(extra.pop("stopping_criteria", None) or [])
    stopper = None
    if stops:
        stopper = StopOnSequences(codec.decode, stops, width, end_ids)
        criteria.append(stopper)
    kw = _generate_kwargs(max_new_tokens, temperature, top_p, num_samples, end_ids, pad_id, extra)
    if criteria:
        kw["stopping_criteria"] = StoppingCriteriaList(criteria)
    if num_samples > 1 and "cache" not in kw and "past_key_values" not in kw:
        input_ids, attention_mask, cache = _shared_prefill(model, input_ids, attention_mask, num_samples)
        if cache is not None:
            kw.pop("num_return_sequences", None)
            kw[_cache_keyword(model)] = cache
    with _rng(model, seed):
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kw)
    rows = out[:, width:].tolist()
    ends = set(end_ids)
    results: list[list[_Raw]] = []
    for p in range(len(prompt_ids)):
        samples = []
        for s in range(num_samples):
            r = p * num_samples + s
            stopped = None if stopper is None else stopper.stopped_at.get(r)
            samples.append(_finish_row(rows[r], codec, ends, stops,
                                       None if stopped is None else stopped - width, max_new_tokens))
        results.append(samples)
    return results


def _stream(model: Any, tokenizer: Any, prompt_ids: Sequence[int], *, codec: _Codec, max_new_tokens: int,
            temperature: float, top_p: float, stops: Sequence[str], end_ids: Sequence[int], seed: int | None,
            extra: Mapping[str, Any], make_result: Callable[[_Raw], Any], lstrip: bool = False,
            timeout: float | None = None) -> GenerationStream:
    """Start generating one sample in a background thread; return the stream of its text."""
    from transformers import StoppingCriteriaList

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    input_ids, attention_mask = _pad_batch([prompt_ids], pad_id, _device(model))
    width = input_ids.shape[1]
    extra = dict(extra)
    criteria = list(extra.pop("stopping_criteria", None) or [])
    stopper = StopOnSequences(codec.decode, stops, width, end_ids) if stops else None
    if stopper is not None:
        criteria.append(stopper)
    kw = _generate_kwargs(max_new_tokens, temperature, top_p, 1, end_ids, pad_id, extra)
    if criteria:
        kw["stopping_criteria"] = StoppingCriteriaList(criteria)
    streamer = _ContinuationStreamer(tokenizer, codec, end_ids, timeout=timeout)
    box: dict[str, Any] = {}

    def target():
        try:
            with _rng(model, seed):
                box["out"] = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                            streamer=streamer, **kw)
        except BaseException as exc:  # surface it in the caller's thread
            box["error"] = exc
            streamer.on_finalized_text("", stream_end=True)

    def finish():
        row = box["out"][0, width:].tolist()
        stopped = None if stopper is None else stopper.stopped_at.get(0)
        raw = _finish_row(row, codec, set(end_ids), stops, None if stopped is None else stopped - width,
                          max_new_tokens)
        return make_result(raw)

    thread = threading.Thread(target=target, daemon=True, name="codellama-course-generate")
    thread.start()
    return GenerationStream(streamer, thread, box, finish, stops, lstrip=lstrip)


def _as_list(x: Any, what: str) -> tuple[list[Any], bool]:
    if isinstance(x, str):
        return [x], True
    if isinstance(x, Sequence) and x and all(isinstance(v, str) for v in x):
        return list(x), False
    raise TypeError(f"{what} must be a str or a non-empty list of str, got {type(x).__name__}")


def _shape(results: list[list[Any]], single: bool, num_samples: int) -> Any:
    if single:
        return results[0][0] if num_samples == 1 else results[0]
    return [r[0] for r in results] if num_samples == 1 else results


# ================================================================================================
# complete
# ================================================================================================
def complete(model: Any, tokenizer: Any, prompt: str | Sequence[str], *, max_new_tokens: int = 128,
             temperature: float = 0.0, top_p: float = 0.95, num_samples: int = 1,
             stop: None | str | Sequence[str] = None, seed: int | None = None, stream: bool = False,
             stop_ids: Sequence[int] | None = None, **generate_kwargs: Any) -> Any:
    """Continue code: ``complete(model, tokenizer, "def fibonacci(n):")``.

    Args:
        prompt: a string, or a list of strings (all generated together, left-padded).
        max_new_tokens: tokens to generate per sample (the prompt does not count; see the module
            docstring for why not ``max_length``).
        temperature: ``0`` = greedy (reproducible); ``> 0`` = sampling, higher = more varied.
        top_p: nucleus sampling threshold (used only when ``temperature > 0``).
        num_samples: samples per prompt, in one batched ``generate`` call (needs ``temperature > 0``).
        stop: ``None``, ``"python"`` (HumanEval: ``\\nclass \\ndef \\n# \\nif \\nprint``), a string, or a
            list of strings. Generation of a sample ends when its new text contains one, and the
            text is cut before it.
        seed: seeds sampling for this call only.
        stream: return a :class:`GenerationStream` of text chunks (one prompt, one sample).
        stop_ids: ids that end generation; default: the model's ``generation_config.eos_token_id``
            plus the tokenizer's EOS.
        generate_kwargs: passed to ``model.generate`` (e.g. ``repetition_penalty``).

    Returns:
        A :class:`Completion` for one prompt and one sample; a list of ``num_samples`` completions
        for one prompt; a list (one per prompt) for several prompts - of completions when
        ``num_samples == 1``, else of lists of completions.

    The prompt is encoded as Meta's reference does (BOS + SentencePiece on ``tokenizer.model``
    where available), and the output decoded keeping its first leading space.
    """
    _check_knobs(max_new_tokens, temperature, top_p, num_samples)
    prompts_list, single = _as_list(prompt, "prompt")
    codec = _codec(tokenizer)
    stops = resolve_stops(stop)
    ends = _end_ids(model, codec, stop_ids)
    ids = [codec.encode_prompt(p) for p in prompts_list]

    def make(p: int, raw: _Raw) -> Completion:
        return Completion(prompts_list[p], raw.text, raw.token_ids, raw.finish_reason, raw.stop_sequence, ids[p])

    if stream:
        if not single or num_samples != 1:
            raise ValueError("stream=True works with one prompt and num_samples=1")
        return _stream(model, tokenizer, ids[0], codec=codec, max_new_tokens=max_new_tokens,
                       temperature=temperature, top_p=top_p, stops=stops, end_ids=ends, seed=seed,
                       extra=generate_kwargs, make_result=lambda raw: make(0, raw))
    raw = _run(model, tokenizer, ids, codec=codec, max_new_tokens=max_new_tokens, temperature=temperature,
               top_p=top_p, num_samples=num_samples, stops=stops, end_ids=ends, seed=seed, extra=generate_kwargs)
    return _shape([[make(p, r) for r in rows] for p, rows in enumerate(raw)], single, num_samples)


# ================================================================================================
# infill
# ================================================================================================
def _split_fill_me(texts: list[str]) -> tuple[list[str], list[str]]:
    prefixes, suffixes = [], []
    for k, t in enumerate(texts):
        try:
            p, s = prompts.fill_me(t)
        except ValueError as exc:
            where = "" if len(texts) == 1 else f" (prompt {k})"
            raise ValueError(f"{exc}{where}; or pass prefix and suffix separately: infill(model, tokenizer, "
                             "prefix, suffix)") from None
        prefixes.append(p)
        suffixes.append(s)
    return prefixes, suffixes


def infill(model: Any, tokenizer: Any, prefix: str | Sequence[str], suffix: str | Sequence[str] | None = None, *,
           suffix_first: bool = False, max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 0.95,
           num_samples: int = 1, stop: None | str | Sequence[str] = None, seed: int | None = None,
           stream: bool = False, **generate_kwargs: Any) -> Any:
    """Fill in the middle: ``infill(model, tokenizer, prefix, suffix)`` or
    ``infill(model, tokenizer, "def f(x):\\n    <FILL_ME>\\n    return y\\n")``.

    The prompt is Meta's exactly (:func:`codellama_course.prompts.infill_ids`: PSM by default, SPM
    with ``suffix_first=True``). Generation stops at ``▁<EOT>`` or EOS (ids looked up in the
    tokenizer); the middle is decoded with its leading whitespace (Meta's ``decode_infilling``).

    With ``suffix=None`` each prompt must contain exactly one ``<FILL_ME>``. Lists of prefixes (and
    suffixes) are infilled together in one batched call. Returns an :class:`Infill` (``.middle``,
    ``.text`` = prefix + middle + suffix, ``.stopped_at_eot``), shaped like :func:`complete`'s results.

    Only models trained to infill can do this: CodeLlama-7b/13b (base and Instruct) and nano;
    34B and the -Python models raise a clear error (their vocabulary has no ``▁<PRE>``).
    """
    _check_knobs(max_new_tokens, temperature, top_p, num_samples)
    prefixes, single = _as_list(prefix, "prefix")
    if suffix is None:
        prefixes, suffixes = _split_fill_me(prefixes)
    else:
        suffixes, single_s = _as_list(suffix, "suffix")
        if len(suffixes) != len(prefixes):
            raise ValueError(f"got {len(prefixes)} prefixes but {len(suffixes)} suffixes")
        single = single and single_s
    ids = [prompts.infill_ids(tokenizer, p, s, suffix_first=suffix_first) for p, s in zip(prefixes, suffixes)]
    codec = _codec(tokenizer)
    ends = prompts.infill_stop_ids(tokenizer)  # [▁<EOT>, EOS]
    stops = resolve_stops(stop)

    def make(p: int, raw: _Raw) -> Infill:
        body = raw.token_ids[:-1] if raw.finish_reason in (EOT, EOS) else raw.token_ids
        middle = prompts.decode_infill(tokenizer, body) if raw.finish_reason != STOP else raw.text
        return Infill(prefixes[p], suffixes[p], middle, raw.token_ids, raw.finish_reason, raw.stop_sequence, ids[p])

    if stream:
        if not single or num_samples != 1:
            raise ValueError("stream=True works with one prompt and num_samples=1")
        return _stream(model, tokenizer, ids[0], codec=codec, max_new_tokens=max_new_tokens,
                       temperature=temperature, top_p=top_p, stops=stops, end_ids=ends, seed=seed,
                       extra=generate_kwargs, make_result=lambda raw: make(0, raw))
    raw = _run(model, tokenizer, ids, codec=codec, max_new_tokens=max_new_tokens, temperature=temperature,
               top_p=top_p, num_samples=num_samples, stops=stops, end_ids=ends, seed=seed, extra=generate_kwargs)
    return _shape([[make(p, r) for r in rows] for p, rows in enumerate(raw)], single, num_samples)


# ================================================================================================
# chat
# ================================================================================================
def chat(model: Any, tokenizer: Any, messages: Sequence[Mapping[str, str]], *, style: str | None = None,
         max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 0.95, seed: int | None = None,
         stream: bool = False, stop: None | str | Sequence[str] = None, **generate_kwargs: Any) -> Any:
    """One assistant turn for a conversation ``[{"role": "system"|"user"|"assistant", "content": ...}, ...]``.

    The prompt ids are Meta's (:func:`codellama_course.prompts.chat_ids`); ``style`` is
    ``"llama2"`` (7B/13B/34B-Instruct) or ``"70b"`` (70B-Instruct), inferred from the tokenizer when
    ``None``. Generation stops at the style's stop ids (:func:`~codellama_course.prompts.chat_stop_ids`:
    EOS; EOS and ``<step>`` for 70b). Returns a :class:`ChatReply` whose ``.messages`` already holds
    the answer, or a :class:`GenerationStream` with ``stream=True``. For a conversation that keeps
    its own history, use :class:`Chat`. (Meta's chat examples sample at temperature 0.2, top_p 0.95;
    the default here is greedy, so lessons are reproducible.)
    """
    _check_knobs(max_new_tokens, temperature, top_p, 1)
    style = style if style is not None else prompts.chat_style(tokenizer)
    history = [dict(m) for m in messages]
    ids = prompts.chat_ids(tokenizer, history, style=style)
    ends = prompts.chat_stop_ids(tokenizer, style)
    codec = _codec(tokenizer)
    stops = resolve_stops(stop)

    def make(raw: _Raw) -> ChatReply:
        text = raw.text.strip()
        return ChatReply(text, raw.token_ids, raw.finish_reason,
                         history + [{"role": "assistant", "content": text}], style, ids, raw.stop_sequence)

    if stream:
        return _stream(model, tokenizer, ids, codec=codec, max_new_tokens=max_new_tokens, temperature=temperature,
                       top_p=top_p, stops=stops, end_ids=ends, seed=seed, extra=generate_kwargs,
                       make_result=make, lstrip=True)
    raw = _run(model, tokenizer, [ids], codec=codec, max_new_tokens=max_new_tokens, temperature=temperature,
               top_p=top_p, num_samples=1, stops=stops, end_ids=ends, seed=seed, extra=generate_kwargs)
    return make(raw[0][0])


class Chat:
    """A conversation that keeps its history::

        session = Chat(model, tokenizer, system="Answer in JavaScript.")
        print(session.send("Write a function that reverses a string."))
        print(session.send("Now make it handle emoji."))    # the model sees the whole conversation
        session.messages                                     # the history, as chat() takes it

    ``send(..., stream=True)`` returns a :class:`GenerationStream`; the answer joins the history
    when the stream finishes. Generation settings given here apply to every turn (override per turn
    in ``send``).
    """

    def __init__(self, model: Any, tokenizer: Any, *, system: str | None = None, style: str | None = None,
                 **generation: Any):
        self.model, self.tokenizer = model, tokenizer
        self.style = style if style is not None else prompts.chat_style(tokenizer)
        self.system = system
        self.generation = generation
        self.messages: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays)."""
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    @property
    def stop_ids(self) -> list[int]:
        return prompts.chat_stop_ids(self.tokenizer, self.style)

    def prompt_ids(self, text: str) -> list[int]:
        """The ids the model would see if ``text`` were sent now."""
        return prompts.chat_ids(self.tokenizer, self.messages + [{"role": "user", "content": text}], style=self.style)

    def send(self, text: str, *, stream: bool = False, **overrides: Any) -> Any:
        """Send a user message; returns the :class:`ChatReply` (or a stream of it)."""
        messages = self.messages + [{"role": "user", "content": text}]
        kw = {**self.generation, **overrides}
        if not stream:
            reply = chat(self.model, self.tokenizer, messages, style=self.style, **kw)
            self.messages = reply.messages
            return reply
        s = chat(self.model, self.tokenizer, messages, style=self.style, stream=True, **kw)
        finish = s._finish

        def finish_and_remember():
            reply = finish()
            self.messages = reply.messages
            return reply

        s._finish = finish_and_remember
        return s

    def __repr__(self) -> str:
        turns = sum(m["role"] == "user" for m in self.messages)
        return f"Chat(style={self.style!r}, turns={turns}, system={self.system!r})"
