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

from collections.abc import Mapping, Sequence
from typing import Any

from ..prompts import chat_ids, chat_stop_ids, chat_style, decode_infill, fill_me, infill_ids, infill_stop_ids
from .batched import Raw, TopP, check_knobs, end_ids_for, run
from .decoding import codec_for
from .results import EOS, EOT, STOP, ChatReply, Completion, Infill
from .stopping import PYTHON_STOPS, StopOnSequences, resolve_stops
from .streaming import GenerationStream, start_stream

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
def _generate(model: Any, tokenizer: Any, ids: list[list[int]], make: Any, *, codec: Any, single: bool, stream: bool,
              num_samples: int, max_new_tokens: int, temperature: float, top_p: float, stops: Any, ends: Any,
              seed: int | None, extra: dict[str, Any]) -> Any:
    """What complete() and infill() share: stream one prompt, or generate every prompt's samples in one batch;
    ``make(prompt_index, raw)`` turns each raw result into the caller's result type."""
    if stream:
        if not single or num_samples != 1:
            raise ValueError("stream=True works with one prompt and num_samples=1")
        return start_stream(model, tokenizer, ids[0], codec=codec, max_new_tokens=max_new_tokens,
                            temperature=temperature, top_p=top_p, stops=stops, end_ids=ends, seed=seed,
                            extra=extra, make_result=lambda raw: make(0, raw))
    raw = run(model, tokenizer, ids, codec=codec, max_new_tokens=max_new_tokens, temperature=temperature,
              top_p=top_p, num_samples=num_samples, stops=stops, end_ids=ends, seed=seed, extra=extra)
    return _shape([[make(p, r) for r in rows] for p, rows in enumerate(raw)], single, num_samples)


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

    Taught in: notebook 02 §2, notebook 02 §5.
    """
    check_knobs(max_new_tokens, temperature, top_p, num_samples)
    prompts_list, single = _as_list(prompt, "prompt")
    codec = codec_for(tokenizer)
    stops = resolve_stops(stop)
    ends = end_ids_for(model, codec, stop_ids)
    ids = [codec.encode_prompt(p) for p in prompts_list]

    def make(p: int, raw: Raw) -> Completion:
        return Completion(prompts_list[p], raw.text, raw.token_ids, raw.finish_reason, raw.stop_sequence, ids[p])

    return _generate(model, tokenizer, ids, make, codec=codec, single=single, stream=stream, num_samples=num_samples,
                     max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stops=stops, ends=ends,
                     seed=seed, extra=generate_kwargs)


# ================================================================================================
# infill
# ================================================================================================
def _split_fill_me(texts: list[str]) -> tuple[list[str], list[str]]:
    prefixes, suffixes = [], []
    for k, t in enumerate(texts):
        try:
            p, s = fill_me(t)
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

    Taught in: notebook 03 §4, notebook 03 §5.
    """
    check_knobs(max_new_tokens, temperature, top_p, num_samples)
    prefixes, single = _as_list(prefix, "prefix")
    if suffix is None:
        prefixes, suffixes = _split_fill_me(prefixes)
    else:
        suffixes, single_s = _as_list(suffix, "suffix")
        if len(suffixes) != len(prefixes):
            raise ValueError(f"got {len(prefixes)} prefixes but {len(suffixes)} suffixes")
        single = single and single_s
    ids = [infill_ids(tokenizer, p, s, suffix_first=suffix_first) for p, s in zip(prefixes, suffixes)]
    codec = codec_for(tokenizer)
    ends = infill_stop_ids(tokenizer)  # [▁<EOT>, EOS]
    stops = resolve_stops(stop)

    def make(p: int, raw: Raw) -> Infill:
        body = raw.token_ids[:-1] if raw.finish_reason in (EOT, EOS) else raw.token_ids
        middle = decode_infill(tokenizer, body) if raw.finish_reason != STOP else raw.text
        return Infill(prefixes[p], suffixes[p], middle, raw.token_ids, raw.finish_reason, raw.stop_sequence, ids[p])

    return _generate(model, tokenizer, ids, make, codec=codec, single=single, stream=stream, num_samples=num_samples,
                     max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stops=stops, ends=ends,
                     seed=seed, extra=generate_kwargs)


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

    Taught in: notebook 04 §4.
    """
    check_knobs(max_new_tokens, temperature, top_p, 1)
    style = style if style is not None else chat_style(tokenizer)
    history = [dict(m) for m in messages]
    ids = chat_ids(tokenizer, history, style=style)
    ends = chat_stop_ids(tokenizer, style)
    codec = codec_for(tokenizer)
    stops = resolve_stops(stop)

    def make(raw: Raw) -> ChatReply:
        text = raw.text.strip()
        return ChatReply(text, raw.token_ids, raw.finish_reason,
                         history + [{"role": "assistant", "content": text}], style, ids, raw.stop_sequence)

    if stream:
        return start_stream(model, tokenizer, ids, codec=codec, max_new_tokens=max_new_tokens, temperature=temperature,
                       top_p=top_p, stops=stops, end_ids=ends, seed=seed, extra=generate_kwargs,
                       make_result=make, lstrip=True)
    raw = run(model, tokenizer, [ids], codec=codec, max_new_tokens=max_new_tokens, temperature=temperature,
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

    Taught in: notebook 04 §5.
    """

    def __init__(self, model: Any, tokenizer: Any, *, system: str | None = None, style: str | None = None,
                 **generation: Any):
        self.model, self.tokenizer = model, tokenizer
        self.style = style if style is not None else chat_style(tokenizer)
        self.system = system
        self.generation = generation
        self.messages: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays)."""
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    @property
    def stop_ids(self) -> list[int]:
        return chat_stop_ids(self.tokenizer, self.style)

    def prompt_ids(self, text: str) -> list[int]:
        """The ids the model would see if ``text`` were sent now."""
        return chat_ids(self.tokenizer, self.messages + [{"role": "user", "content": text}], style=self.style)

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
