"""Streaming: text chunks as they are generated, decoded like the finished result, never past a stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable

from .batched import Raw, finish_row, generate_kwargs, model_device, pad_batch, seeded_rng
from .decoding import Codec
from .results import short
from .stopping import StopOnSequences, cut_at_stop


def _text_iterator_streamer():
    from transformers import TextIteratorStreamer

    return TextIteratorStreamer


class ContinuationStreamer(_text_iterator_streamer()):  # type: ignore[misc]
    """``TextIteratorStreamer`` that decodes like :class:`Codec` (keeps the first leading space,
    hides end ids such as ``▁<EOT>``) and holds back incomplete UTF-8 characters."""

    def __init__(self, tokenizer: Any, codec: Codec, end_ids: Sequence[int], timeout: float | None = None):
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

    Taught in: notebook 02 deep dive "streaming".
    """

    def __init__(self, streamer: ContinuationStreamer, thread: threading.Thread, box: dict,
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
                head, found = cut_at_stop(full, self._stops)
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
        return f"GenerationStream(text so far={short(self.text)})"


def start_stream(model: Any, tokenizer: Any, prompt_ids: Sequence[int], *, codec: Codec, max_new_tokens: int,
                 temperature: float, top_p: float, stops: Sequence[str], end_ids: Sequence[int], seed: int | None,
                 extra: Mapping[str, Any], make_result: Callable[[Raw], Any], lstrip: bool = False,
                 timeout: float | None = None) -> GenerationStream:
    """Start generating one sample in a background thread; return the stream of its text."""
    from transformers import StoppingCriteriaList

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    input_ids, attention_mask = pad_batch([prompt_ids], pad_id, model_device(model))
    width = input_ids.shape[1]
    extra = dict(extra)
    criteria = list(extra.pop("stopping_criteria", None) or [])
    stopper = StopOnSequences(codec.decode, stops, width, end_ids) if stops else None
    if stopper is not None:
        criteria.append(stopper)
    kw = generate_kwargs(max_new_tokens, temperature, top_p, 1, end_ids, pad_id, extra)
    if criteria:
        kw["stopping_criteria"] = StoppingCriteriaList(criteria)
    streamer = ContinuationStreamer(tokenizer, codec, end_ids, timeout=timeout)
    box: dict[str, Any] = {}

    def target():
        try:
            with seeded_rng(model, seed):
                box["out"] = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                            streamer=streamer, **kw)
        except BaseException as exc:  # surface it in the caller's thread
            box["error"] = exc
            streamer.on_finalized_text("", stream_end=True)

    def finish():
        row = box["out"][0, width:].tolist()
        stopped = None if stopper is None else stopper.stopped_at.get(0)
        raw = finish_row(row, codec, set(end_ids), stops, None if stopped is None else stopped - width,
                         max_new_tokens)
        return make_result(raw)

    thread = threading.Thread(target=target, daemon=True, name="codellama-course-generate")
    thread.start()
    return GenerationStream(streamer, thread, box, finish, stops, lstrip=lstrip)
