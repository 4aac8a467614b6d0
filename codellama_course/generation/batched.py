"""The core of every helper: ``n`` samples of every prompt in one batched ``generate`` call.

Left padding and an attention mask, the prompt computed once and its KV cache shared by the samples
(:func:`shared_prefill`), a cheaper top-p (:class:`TopP`), seeds that leave the caller's random state
alone, and the turn from generated rows to text and a finish reason (:func:`finish_row`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .decoding import Codec
from .results import EOS, LENGTH, STOP
from .stopping import StopOnSequences, cut_at_stop


def model_device(model: Any):
    dev = getattr(model, "device", None)
    if dev is not None:
        return dev
    return next(model.parameters()).device


def check_knobs(max_new_tokens: int, temperature: float, top_p: float, num_samples: int) -> None:
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


def end_ids_for(model: Any, codec: Codec, extra: Sequence[int] | None) -> list[int]:
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
class Raw:
    token_ids: list[int]
    text: str
    finish_reason: str
    stop_sequence: str | None


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, device: Any):
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

    Taught in: notebook 02 §3.
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


def generate_kwargs(max_new_tokens: int, temperature: float, top_p: float, num_samples: int,
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


def seeded_rng(model: Any, seed: int | None):
    """Seed the random state for this call only (the caller's RNG state is restored after)."""
    import contextlib

    import torch

    if seed is None:
        return contextlib.nullcontext()
    dev = model_device(model)
    devices = [dev.index or 0] if dev.type == "cuda" else []

    @contextlib.contextmanager
    def seeded():
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    return seeded()


def cache_keyword(model: Any) -> str:
    """What this transformers version calls the KV-cache argument of ``forward``/``generate``: ``cache``
    (newer 5.x releases, where ``past_key_values`` is deprecated) or ``past_key_values`` (5.9, Colab's)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def shared_prefill(model: Any, input_ids: Any, attention_mask: Any, n: int):
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
                  position_ids=positions[:, :-1], use_cache=True, **{cache_keyword(model): cache})
        cache.batch_repeat_interleave(n)
    except Exception:  # an architecture whose cache does not work like this: let generate do it
        return input_ids, attention_mask, None
    return input_ids.repeat_interleave(n, dim=0), attention_mask.repeat_interleave(n, dim=0), cache


def finish_row(gen: list[int], codec: Codec, end_ids: set[int], stops: Sequence[str],
               stopped_len: int | None, max_new_tokens: int) -> Raw:
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
    text, found = cut_at_stop(text, stops)
    if found is not None:
        reason = STOP
    return Raw(list(ids), text, reason, found)


def run(model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], *, codec: Codec,
        max_new_tokens: int, temperature: float, top_p: float, num_samples: int, stops: Sequence[str],
        end_ids: Sequence[int], seed: int | None, extra: Mapping[str, Any]) -> list[list[Raw]]:
    """Generate ``num_samples`` continuations of every prompt in one ``generate`` call."""
    from transformers import StoppingCriteriaList

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    input_ids, attention_mask = pad_batch(prompt_ids, pad_id, model_device(model))
    width = input_ids.shape[1]
    extra = dict(extra)
    criteria = list(extra.pop("stopping_criteria", None) or [])
    stopper = None
    if stops:
        stopper = StopOnSequences(codec.decode, stops, width, end_ids)
        criteria.append(stopper)
    kw = generate_kwargs(max_new_tokens, temperature, top_p, num_samples, end_ids, pad_id, extra)
    if criteria:
        kw["stopping_criteria"] = StoppingCriteriaList(criteria)
    if num_samples > 1 and "cache" not in kw and "past_key_values" not in kw:
        input_ids, attention_mask, cache = shared_prefill(model, input_ids, attention_mask, num_samples)
        if cache is not None:
            kw.pop("num_return_sequences", None)
            kw[cache_keyword(model)] = cache
    with seeded_rng(model, seed):
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kw)
    rows = out[:, width:].tolist()
    ends = set(end_ids)
    results: list[list[Raw]] = []
    for p in range(len(prompt_ids)):
        samples = []
        for s in range(num_samples):
            r = p * num_samples + s
            stopped = None if stopper is None else stopper.stopped_at.get(r)
            samples.append(finish_row(rows[r], codec, ends, stops,
                                      None if stopped is None else stopped - width, max_new_tokens))
        results.append(samples)
    return results
