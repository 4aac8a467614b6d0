"""Memory and fit, shown: the one GPU catalogue, which model fits on which GPU (tables and charts), the
decode roofline, and the memory tables and KV-cache chart of notebooks 01 and 05.

Lesson tools: they only *show* what :mod:`codellama_course.memory` computes (``estimate_memory``,
``fit_status``); the core never imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..memory import GIB, estimate_memory, fit_status
from ..precision import PRECISIONS, parse_precision
from ..registry import as_variant

__all__ = ["GPU", "GPUS", "get_gpu", "fit_verdict", "FamilyFit", "family_fit", "plot_family_fit", "plot_fit_chart",
           "bytes_read_per_token", "roofline_tokens_per_s", "roofline_table", "MemoryTable", "memory_table",
           "plot_kv_cache"]

_DENSE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


# --------------------------------------------------------------------------------------------
# the GPU catalogue (notebooks 01 §5 and 05 §4)


@dataclass(frozen=True)
class GPU:
    """A GPU as the fit and roofline calculations see it.

    Taught in: notebook 05 §4."""

    name: str
    memory_gib: float  # what torch reports as total memory (the "GB" on the box is larger)
    bandwidth_gbs: float  # peak memory bandwidth, GB/s (10^9 bytes/s), from the vendor's data sheet
    compute_capability: tuple[int, int]

    @property
    def bf16(self) -> bool:
        return self.compute_capability >= (8, 0)

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 2**30)

    @property
    def short(self) -> str:
        """Column header: "T4", "4090", "A100-40", "H100"."""
        words = self.name.replace("RTX ", "").split()
        return words[0] + ("-" + words[-1].removesuffix("GB") if words[0] == "A100" else "")


# The one GPU catalogue of the course: memory as torch reports it (GiB; the "GB" on the box is larger; L4/A10G
# rounded down to 22 GiB), bandwidth from NVIDIA's data sheets.
GPUS: tuple[GPU, ...] = (
    GPU("T4 16GB", 14.7, 320, (7, 5)),
    GPU("L4 24GB", 22.0, 300, (8, 9)),
    GPU("A10G 24GB", 22.0, 600, (8, 6)),
    GPU("RTX 3090 24GB", 23.6, 936, (8, 6)),
    GPU("RTX 4090 24GB", 23.6, 1008, (8, 9)),
    GPU("A100 40GB", 39.4, 1555, (8, 0)),
    GPU("A100 80GB", 79.2, 2039, (8, 0)),
    GPU("H100 SXM 80GB", 79.1, 3350, (9, 0)),
    GPU("H200 141GB", 139.8, 4800, (9, 0)),
)


def get_gpu(name: str) -> GPU:
    """A GPU of :data:`GPUS` by (part of) its name, case-insensitive: ``"t4"``, ``"4090"``, ``"A100 80"``.

    Taught in: notebook 05 §4."""
    key = name.lower().replace("-", " ").replace("nvidia", "").strip()
    hits = [g for g in GPUS if key in g.name.lower()]
    if len(hits) != 1:
        choices = ", ".join(g.name for g in GPUS)
        raise LookupError(f"{'no' if not hits else 'more than one'} GPU matches {name!r}; known: {choices}")
    return hits[0]


def fit_verdict(model: Any, precision: str, gpu: GPU | str, context_tokens: int = 2048) -> str:
    """"fits" (≤ 85 % of the GPU's memory), "tight" (≤ 100 %) or "no": weights + KV cache + activations.

    Taught in: notebook 05 §4."""
    g = get_gpu(gpu) if isinstance(gpu, str) else gpu
    return fit_status(estimate_memory(model, precision, context_tokens).total_bytes, g.memory_bytes)


_MARK = {"fits": "✓", "tight": "~", "no": "✗"}


@dataclass
class FamilyFit:
    """Size × precision × context → GiB needed and the verdict on each GPU. Prints deterministically.

    Taught in: notebook 05 §4."""

    sizes: tuple[str, ...]
    precisions: tuple[str, ...]
    contexts: tuple[int, ...]
    gpus: tuple[GPU, ...]
    gib: dict[tuple[str, str, int], float]
    verdicts: dict[tuple[str, str, int, str], str]

    def verdict(self, size: str, precision: str, context: int, gpu: str) -> str:
        return self.verdicts[(size, precision, context, get_gpu(gpu).name)]

    def __str__(self) -> str:
        short = [g.short for g in self.gpus]
        width = max(len(s) for s in short) + 1
        lines = ["GiB needed (weights + KV cache + activations for the context) and fit: "
                 "✓ fits (≤ 85 %), ~ tight (≤ 100 %), ✗ does not fit",
                 f"{'model':5} {'precision':9} {'context':>7} {'GiB':>7} " + "".join(s.rjust(width) for s in short)]
        for size in self.sizes:
            for p in self.precisions:
                for c in self.contexts:
                    marks = "".join(_MARK[self.verdicts[(size, p, c, g.name)]].rjust(width) for g in self.gpus)
                    lines.append(f"{size.upper():5} {p:9} {c:>7,} {self.gib[(size, p, c)]:7.2f} {marks}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))


def family_fit(sizes: Sequence[str] = ("7b", "13b", "34b", "70b"), precisions: Sequence[str] = ("fp16", "8bit", "4bit"),
               contexts: Sequence[int] = (2048, 16384), gpus: Sequence[GPU] = GPUS) -> FamilyFit:
    """Every size × precision × context against every GPU (base models; Python/Instruct differ by < 1 MiB).

    Taught in: notebook 05 §4."""
    gib, verdicts = {}, {}
    for s in sizes:
        for p in precisions:
            for c in contexts:
                need = estimate_memory(s, p, c).total_bytes
                gib[(s, p, c)] = need / 2**30
                for g in gpus:
                    verdicts[(s, p, c, g.name)] = fit_status(need, g.memory_bytes)
    return FamilyFit(tuple(sizes), tuple(precisions), tuple(contexts), tuple(gpus), gib, verdicts)


def plot_family_fit(sizes: Sequence[str] = ("7b", "13b", "34b", "70b"), precisions: Sequence[str] = ("fp16", "8bit", "4bit"),
                    contexts: tuple[int, int] = (2048, 16384), gpus: Sequence[GPU] = GPUS, ax=None):
    """Bars per size × precision: weights, + KV cache/activations at the short context, + the extra the long
    context needs; a labelled line per GPU memory size. Returns the Axes.

    Taught in: notebook 05 §4."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 5.5))
    short, long_ = contexts
    width = 0.8 / len(precisions)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for j, p in enumerate(precisions):
        xs = [i + (j - (len(precisions) - 1) / 2) * width for i in range(len(sizes))]
        w = [estimate_memory(s, p).weights_gib for s in sizes]
        a = [estimate_memory(s, p, short).total_gib for s in sizes]
        b = [estimate_memory(s, p, long_).total_gib for s in sizes]
        ax.bar(xs, w, width, color=colors[j])
        ax.bar(xs, [y - x for x, y in zip(w, a)], width, bottom=w, color=colors[j], alpha=0.55)
        ax.bar(xs, [y - x for x, y in zip(a, b)], width, bottom=a, color=colors[j], alpha=0.2, hatch="//")
        for x, top in zip(xs, b):
            ax.text(x, top * 1.02, f"{top:.0f}", ha="center", va="bottom", fontsize=7)
        handles.append(Patch(color=colors[j], label=f"{p} weights"))
    handles += [Patch(facecolor="grey", alpha=0.55, label=f"+ KV cache & activations, {short:,} tokens"),
                Patch(facecolor="grey", alpha=0.2, hatch="//", label=f"+ the rest up to {long_:,} tokens")]
    by_mem: dict[int, list[GPU]] = {}
    for g in gpus:
        by_mem.setdefault(round(g.memory_gib), []).append(g)
    right = len(sizes) - 0.5
    levels = sorted((min(g.memory_gib for g in group), group) for group in by_mem.values())
    for k, (level, group) in enumerate(levels):
        ax.axhline(level, color="black", lw=0.8, ls="--")
        names = " / ".join(g.short for g in group)
        close_above = k + 1 < len(levels) and levels[k + 1][0] < 1.12 * level  # labels would overlap
        ax.text(right + 0.05, level, f"{names}: {level:g} GiB", ha="left", va="top" if close_above else "bottom",
                fontsize=7)
    ax.set_xticks(range(len(sizes)), [s.upper() for s in sizes])
    ax.set_xlim(-0.5, right + 1.0)
    ax.set_yscale("log")
    ax.set_ylabel("GiB (log scale)")
    ax.set_title(f"Code Llama on common GPUs: weights, + a {short:,}-token context, + up to {long_:,} tokens")
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return ax


# --------------------------------------------------------------------------------------------
# the memory-bandwidth roofline of decoding


def bytes_read_per_token(model: Any, precision: str, context_tokens: int = 0) -> int:
    """Bytes a batch-1 decode step reads from memory: every weight once (the embedding table only one row,
    unless it is tied to ``lm_head``), the 4/8-bit scales, and the KV cache of ``context_tokens`` tokens.

    Taught in: notebook 05 deep dive "how fast can decoding be? The roofline"."""
    v = as_variant(model)
    est = estimate_memory(v, precision, context_tokens)
    read = est.weights_bytes + est.kv_cache_bytes
    if not v.tie_word_embeddings:
        dense = 4 if est.precision == "fp32" else 2
        read -= (v.vocab_size - 1) * v.hidden_size * dense  # one row of embed_tokens is read
    return int(read)


def roofline_tokens_per_s(model: Any, precision: str, gpu: GPU | str | float, context_tokens: int = 0) -> float:
    """Upper bound of batch-1 decode speed: memory bandwidth ÷ bytes read per token (``gpu``: a GPU, a name,
    or a bandwidth in GB/s). Real kernels reach 60-90 % of it in fp16; bitsandbytes' 4-bit kernels less.

    Taught in: notebook 05 deep dive "how fast can decoding be? The roofline"."""
    bw = gpu if isinstance(gpu, (int, float)) else (get_gpu(gpu) if isinstance(gpu, str) else gpu).bandwidth_gbs
    return bw * 1e9 / bytes_read_per_token(model, precision, context_tokens)


def roofline_table(model: Any = "7b", precisions: Sequence[str] = ("fp16", "8bit", "4bit"),
                   gpus: Sequence[GPU] = GPUS, context_tokens: int = 0) -> str:
    """Printed: per GPU, the roofline tokens/s of ``model`` in each precision (where it fits).

    Taught in: notebook 05 deep dive "how fast can decoding be? The roofline"."""
    name = as_variant(model).name
    head = f"{name}: decode roofline, tokens/s (batch 1, KV cache of {context_tokens:,} tokens); GB read per token: " + \
        ", ".join(f"{p} {bytes_read_per_token(model, p, context_tokens) / 1e9:.2f}" for p in precisions)
    lines = [head, f"{'GPU':15} {'GB/s':>6} " + "".join(p.rjust(9) for p in precisions)]
    for g in gpus:
        cells = []
        for p in precisions:
            ok = fit_verdict(model, p, g, context_tokens) != "no"
            cells.append(f"{roofline_tokens_per_s(model, p, g, context_tokens):9.1f}" if ok else "     (no)")
        lines.append(f"{g.name:15} {g.bandwidth_gbs:6.0f} " + "".join(cells))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# which model fits where, and the KV cache (notebook 01 §4-5)


def plot_fit_chart(precisions: Sequence[str] = ("fp16", "8bit", "4bit"), context_tokens: int = 4096,
                   gpus: Sequence[GPU] = GPUS, sizes: Sequence[str] = ("7b", "13b", "34b", "70b"), ax=None):
    """Grouped bars: GiB each size needs per precision, with a line for each memory size of the GPU catalogue
    (GPUs of about the same memory share a line). Returns the Axes.

    Taught in: notebook 01 §5."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(precisions)
    for j, p in enumerate(precisions):
        need = [estimate_memory(s, p, context_tokens).total_gib for s in sizes]
        xs = [i + (j - (len(precisions) - 1) / 2) * width for i in range(len(sizes))]
        ax.bar(xs, need, width=width, label=p)
        for x, n in zip(xs, need):
            ax.text(x, n, f"{n:.0f}", ha="center", va="bottom", fontsize=7)
    drawn: dict[int, list[GPU]] = {}
    for g in gpus:
        drawn.setdefault(round(g.memory_gib), []).append(g)
    styles = ["--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1))]
    for k, (cap, group) in enumerate(sorted(drawn.items())):
        ax.axhline(cap, color="black", lw=1, ls=styles[k % len(styles)],
                   label=" / ".join(g.short for g in group) + f" ({cap} GiB)")
    ax.set_xticks(range(len(sizes)), [s.upper() for s in sizes])
    ax.set_ylabel(f"GiB (weights + KV cache for {context_tokens:,} tokens)")
    ax.set_yscale("log")
    ax.set_title("Which Code Llama fits on which GPU")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return ax


class MemoryTable(list):
    """Rows of ``MemoryEstimate``; prints as a model × precision grid of total GiB.

    Taught in: notebook 01 §5."""

    def grid(self) -> tuple[list[str], list[str], dict[tuple[str, str], MemoryEstimate]]:
        models = list(dict.fromkeys(e.model for e in self))
        precisions = list(dict.fromkeys(e.precision for e in self))
        return models, precisions, {(e.model, e.precision): e for e in self}

    def __str__(self) -> str:
        models, precisions, cells = self.grid()
        ctx = self[0].context_tokens if self else 0
        title = f"GiB (weights + KV cache + activations for {ctx:,} tokens)" if ctx else "GiB of weights"
        width = max([len(m) for m in models] + [5])
        lines = [title, "model".ljust(width) + "".join(p.rjust(9) for p in precisions)]
        for m in models:
            row = "".join(f"{cells[(m, p)].total_gib:9.2f}" if (m, p) in cells else " " * 9 for p in precisions)
            lines.append(m.ljust(width) + row)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


def memory_table(models: Iterable[Any] | None = None, precisions: Sequence[str] = PRECISIONS,
                 context_tokens: int = 0, batch_size: int = 1, **kwargs) -> MemoryTable:
    """Estimates for every model × precision (default: the four base models).

    Taught in: notebook 01 §5."""
    if models is None:
        models = ["7b", "13b", "34b", "70b"]
    return MemoryTable(estimate_memory(m, p, context_tokens, batch_size, **kwargs) for m in models for p in precisions)


def plot_kv_cache(models: Sequence[Any] = ("7b", "13b", "34b", "70b"), max_tokens: int = 100_000,
                  dtype: str = "fp16", batch_size: int = 1, ax=None, mark: Sequence[int] = (16_384, 100_000)):
    """Line chart: KV-cache GiB against context length, one line per model; returns the Axes.

    Taught in: notebook 01 §4."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    xs = [int(max_tokens * k / 50) for k in range(51)]
    for m in models:
        v = as_variant(m)
        per_tok = v.kv_bytes_per_token(_DENSE_BYTES[parse_precision(dtype).storage]) * batch_size
        label = f"{v.name} ({v.num_kv_heads} KV heads)"
        ax.plot([x / 1000 for x in xs], [per_tok * x / GIB for x in xs], label=label)
    for x in mark:
        if x <= max_tokens:
            ax.axvline(x / 1000, color="grey", ls=":", lw=1)
            ax.text(x / 1000, ax.get_ylim()[1] * 0.95, f" {x:,}", color="grey", fontsize=8, va="top")
    ax.set_xlabel("context length (thousand tokens)")
    ax.set_ylabel(f"KV cache, GiB ({dtype}, batch {batch_size})")
    ax.set_title("KV cache grows linearly with context")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax
