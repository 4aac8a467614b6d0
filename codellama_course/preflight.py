"""``preflight()``: what this machine is, and which Code Llama fits on it.

Run it first (notebook 00) and paste its output into bug reports: it never prints a token, only
whether one is present.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["preflight", "PreflightReport", "FitTable", "gpu_info", "cpu_info", "ram_info", "disk_info", "environment",
           "fit_status", "plot_fit_chart", "COMMON_GPUS"]

# Memory that torch reports as usable on common GPUs (GiB; the marketing "GB" is larger).
COMMON_GPUS: dict[str, float] = {
    "T4 16 GB": 14.7,
    "L4 / A10G / RTX 3090 / 4090 24 GB": 22.0,
    "A100 40 GB": 39.4,
    "A100 80 GB": 79.2,
    "H100 80 GB": 79.1,
}

FIT_PRECISIONS = ("fp32", "bf16", "fp16", "8bit", "4bit")


# --------------------------------------------------------------------------------------------
# probes (each returns plain data and never raises)


def environment() -> str:
    if "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG") or os.environ.get("COLAB_GPU"):
        return "colab"
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") or os.environ.get("KAGGLE_URL_BASE"):
        return "kaggle"
    return "local"


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def gpu_info() -> list[dict[str, Any]]:
    """One dict per CUDA GPU: name, total_bytes, free_bytes, compute_capability, bf16."""
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        out = []
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            try:
                free, total = torch.cuda.mem_get_info(i)
            except Exception:
                free, total = props.total_memory, props.total_memory
            cc = (props.major, props.minor)
            out.append({"index": i, "name": props.name, "total_bytes": int(total), "free_bytes": int(free),
                        "compute_capability": f"{cc[0]}.{cc[1]}", "bf16": cc >= (8, 0)})
        return out
    except Exception:
        return []


def cpu_info() -> dict[str, Any]:
    """name, cores, torch's vector ISA (``AVX2``, ``AVX512``...) and whether bf16 is computed in hardware."""
    from .hardware import NATIVE_BF16_FEATURES, cpu_capabilities, cpu_has_native_bf16

    caps = cpu_capabilities()
    try:
        import torch

        isa = torch.backends.cpu.get_cpu_capability()
    except Exception:
        isa = "unknown"
    return {"name": caps.get("cpu_name") or platform.processor() or platform.machine(),
            "cores": caps.get("num_physical_cores") or os.cpu_count() or 0, "isa": isa,
            "native_bf16": cpu_has_native_bf16(),
            "bf16_features": [f for f in NATIVE_BF16_FEATURES if caps.get(f) is True]}


def ram_info() -> dict[str, int]:
    """total_bytes and available_bytes of host RAM (Linux /proc/meminfo, else sysconf/psutil)."""
    try:
        fields = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0]) * 1024
        return {"total_bytes": fields["MemTotal"], "available_bytes": fields.get("MemAvailable", fields["MemFree"])}
    except Exception:
        pass
    try:
        import psutil  # type: ignore

        vm = psutil.virtual_memory()
        return {"total_bytes": int(vm.total), "available_bytes": int(vm.available)}
    except Exception:
        pass
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return {"total_bytes": total, "available_bytes": total}
    except Exception:
        return {"total_bytes": 0, "available_bytes": 0}


def hf_cache_dir() -> Path:
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except Exception:
        return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def disk_info(path: Path | None = None) -> dict[str, Any]:
    """Free/total bytes on the disk that holds the Hugging Face cache (where downloads go)."""
    path = Path(path) if path is not None else hf_cache_dir()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
        return {"path": str(path), "free_bytes": usage.free, "total_bytes": usage.total}
    except Exception:
        return {"path": str(path), "free_bytes": 0, "total_bytes": 0}


def fit_status(need_bytes: float, capacity_bytes: float) -> str:
    """"fits" (≤ 85 % of the memory), "tight" (≤ 100 %: may work with short prompts), or "no"."""
    from .loading import COMFORT

    if capacity_bytes <= 0:
        return "no"
    ratio = need_bytes / capacity_bytes
    return "fits" if ratio <= COMFORT else "tight" if ratio <= 1.0 else "no"


# --------------------------------------------------------------------------------------------
# report


@dataclass
class FitTable:
    """Variant × precision → "fits" / "tight" / "no" for one memory size."""

    capacity_bytes: int
    where: str
    context_tokens: int
    precisions: tuple[str, ...]
    rows: list[tuple[str, dict[str, tuple[str, float]]]]  # (variant, {precision: (status, GiB needed)})

    def status(self, variant: str, precision: str) -> str:
        return dict(self.rows)[variant][precision][0]

    def __str__(self) -> str:
        head = (f"Fit on {self.where} ({self.capacity_bytes / 2**30:.1f} GiB), {self.context_tokens:,}-token context"
                " — GiB needed / status:")
        width = max(len(name) for name, _ in self.rows)
        lines = [head, "  " + "model".ljust(width) + "".join(p.rjust(14) for p in self.precisions)]
        for name, cells in self.rows:
            lines.append("  " + name.ljust(width) + "".join(
                f"{cells[p][1]:7.1f} {cells[p][0]:>5}".rjust(14) for p in self.precisions))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


def fit_table(capacity_bytes: int, where: str, context_tokens: int = 4096,
              precisions: Sequence[str] = FIT_PRECISIONS, include_nano: bool = True) -> FitTable:
    from .memory import estimate_memory
    from .registry import variants

    rows = []
    seen_sizes = set()
    for v in variants(include_nano=include_nano):
        key = (v.size, v.vocab_size, v.num_kv_heads)
        cells = {}
        for p in precisions:
            e = estimate_memory(v, p, context_tokens)
            cells[p] = (fit_status(e.total_bytes, capacity_bytes), e.total_gib)
        rows.append((v.name, cells))
        seen_sizes.add(key)
    return FitTable(capacity_bytes, where, context_tokens, tuple(precisions), rows)


@dataclass
class PreflightReport:
    environment: str
    platform: str
    python: str
    versions: dict[str, str | None]
    gpus: list[dict[str, Any]]
    ram: dict[str, int]
    disk: dict[str, Any]
    bitsandbytes_usable: bool
    bitsandbytes_note: str
    hf_token_present: bool
    hub_online: bool
    model: str
    model_reason: str
    auto_precision: str
    fit: FitTable
    notes: list[str] = field(default_factory=list)
    cpu: dict[str, Any] = field(default_factory=dict)

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def bf16(self) -> bool:
        return any(g["bf16"] for g in self.gpus)

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "fit"}
        d["fit"] = {name: {p: s for p, (s, _) in cells.items()} for name, cells in self.fit.rows}
        return d

    def __str__(self) -> str:
        gib = lambda b: f"{b / 2**30:.1f}"  # noqa: E731
        lines = ["codellama-course preflight (paste this into bug reports; it contains no secrets)"]
        add = lambda k, v: lines.append(f"  {k:<16}{v}")  # noqa: E731
        add("environment", f"{self.environment} · {self.platform}")
        add("python", self.python)
        add("packages", " · ".join(f"{k} {v or 'missing'}" for k, v in self.versions.items()))
        if self.gpus:
            for g in self.gpus:
                add(f"GPU {g['index']}", f"{g['name']} · compute capability {g['compute_capability']} · "
                    f"bf16 {'yes' if g['bf16'] else 'no (use fp16)'} · VRAM {gib(g['free_bytes'])} free / "
                    f"{gib(g['total_bytes'])} GiB")
        else:
            add("GPU", "none — CPU only (the course runs on the nano model)")
        if self.cpu:
            bf16 = (f"yes ({', '.join(self.cpu['bf16_features'])})" if self.cpu["native_bf16"]
                    else "no (emulated: nano trains in fp32 here)")
            add("CPU", f"{self.cpu['name']} · {self.cpu['cores']} cores · {self.cpu['isa']} · bf16 in hardware {bf16}")
        add("RAM", f"{gib(self.ram['available_bytes'])} available / {gib(self.ram['total_bytes'])} GiB")
        add("disk (HF cache)", f"{gib(self.disk['free_bytes'])} GiB free at {self.disk['path']}")
        add("bitsandbytes", ("usable — " if self.bitsandbytes_usable else "not usable — ") + self.bitsandbytes_note)
        add("HF token", "present" if self.hf_token_present else "not found (needed only for gated meta-llama/* repos)")
        add("Hub", "reachable" if self.hub_online else "offline")
        add("model", f"{self.model} ({self.model_reason}) · precision auto → {self.auto_precision}")
        lines.append("")
        lines.append(str(self.fit))
        for n in self.notes:
            lines.append(f"  note: {n}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p, cycle) -> None:  # IPython shows str(), not the dataclass repr
        p.text(str(self))


def preflight(context_tokens: int = 4096) -> PreflightReport:
    """Check this machine for the course. Returns a report; ``print(report)`` for the full text."""
    from .loading import ENV_VAR, auto_precision, hf_token_present, hub_online, resolve_model
    from .quantization import bitsandbytes_status

    versions = {d: _version(d) for d in ("torch", "transformers", "accelerate", "bitsandbytes",
                                           "huggingface-hub", "tokenizers", "codellama-course")}
    if versions["codellama-course"] is None:
        from . import __version__

        versions["codellama-course"] = f"{__version__} (source)"
    gpus = gpu_info()
    ram = ram_info()
    bnb_ok, bnb_note = bitsandbytes_status()
    online = hub_online()
    model = resolve_model()
    if os.environ.get(ENV_VAR):
        reason = f"from ${ENV_VAR}"
    elif model == "nano":
        reason = "default: no CUDA GPU" if not gpus else "default: Hub not reachable"
    else:
        reason = "default on a GPU with Hub access"
    if gpus:
        capacity, where = gpus[0]["total_bytes"], gpus[0]["name"]
    else:
        capacity, where = ram["total_bytes"], "CPU RAM"
    notes = []
    if gpus and not any(g["bf16"] for g in gpus):
        notes.append("this GPU has no bf16: the course loads fp16 here (never pass dtype=torch.bfloat16).")
    if environment() == "colab" and not bnb_ok:
        notes.append("Colab: run the setup cell at the top (it installs bitsandbytes), then restart the session.")
    if environment() == "colab" and ram["total_bytes"] and ram["total_bytes"] < 14 * 2**30:
        notes.append("Colab's ~12.7 GB host RAM: load 7B+ with device_map='auto' (load() does) and prefer 4bit.")
    return PreflightReport(
        environment=environment(), platform=f"{platform.system()} {platform.machine()}",
        python=platform.python_version(), versions=versions, gpus=gpus, ram=ram, disk=disk_info(),
        bitsandbytes_usable=bnb_ok, bitsandbytes_note=bnb_note, hf_token_present=hf_token_present(),
        hub_online=online, model=model, model_reason=reason, auto_precision=auto_precision(),
        fit=fit_table(capacity, where, context_tokens), notes=notes, cpu=cpu_info())


def plot_fit_chart(precisions: Sequence[str] = ("fp16", "8bit", "4bit"), context_tokens: int = 4096,
                   gpus: dict[str, float] | None = None, sizes: Sequence[str] = ("7b", "13b", "34b", "70b"), ax=None):
    """Grouped bars: GiB each size needs per precision, with a line for each common GPU. Returns the Axes."""
    import matplotlib.pyplot as plt

    from .memory import estimate_memory

    gpus = COMMON_GPUS if gpus is None else gpus
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(precisions)
    for j, p in enumerate(precisions):
        need = [estimate_memory(s, p, context_tokens).total_gib for s in sizes]
        xs = [i + (j - (len(precisions) - 1) / 2) * width for i in range(len(sizes))]
        bars = ax.bar(xs, need, width=width, label=p)
        for x, n in zip(xs, need):
            ax.text(x, n, f"{n:.0f}", ha="center", va="bottom", fontsize=7)
    drawn: dict[float, list[str]] = {}
    for name, cap in gpus.items():
        drawn.setdefault(round(cap), []).append(name)
    styles = ["--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1))]
    for k, (cap, names) in enumerate(sorted(drawn.items())):
        ax.axhline(cap, color="black", lw=1, ls=styles[k % len(styles)], label=" / ".join(names) + f" ({cap} GiB)")
    ax.set_xticks(range(len(sizes)), [s.upper() for s in sizes])
    ax.set_ylabel(f"GiB (weights + KV cache for {context_tokens:,} tokens)")
    ax.set_yscale("log")
    ax.set_title("Which Code Llama fits on which GPU")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return ax
