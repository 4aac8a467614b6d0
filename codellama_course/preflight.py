"""``preflight()``: what this machine is, and which Code Llama fits on it.

Run it first (notebook 00) and paste its output into bug reports: it never prints a token, only
whether one is present. The probes are :mod:`codellama_course.hardware`'s; this module puts them together.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from dataclasses import dataclass, field
from typing import Any, Sequence

import codellama_course.hardware as hardware  # probes called through the module: tests monkeypatch them
from ._version import __version__
from .loading import ENV_VAR, resolve_model
from .memory import auto_precision, estimate_memory, fit_status
from .registry import variants

__all__ = ["preflight", "PreflightReport", "FitTable", "fit_table", "FIT_PRECISIONS"]

FIT_PRECISIONS = ("fp32", "bf16", "fp16", "8bit", "4bit")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


@dataclass
class FitTable:
    """Variant × precision → "fits" / "tight" / "no" for one memory size.

    Taught in: notebook 00 §1."""

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
    """Every variant (and nano) × precision against one memory size: "fits", "tight" or "no", and GiB needed.

    Taught in: notebook 00 §1."""
    rows = []
    for v in variants(include_nano=include_nano):
        cells = {}
        for p in precisions:
            e = estimate_memory(v, p, context_tokens)
            cells[p] = (fit_status(e.total_bytes, capacity_bytes), e.total_gib)
        rows.append((v.name, cells))
    return FitTable(capacity_bytes, where, context_tokens, tuple(precisions), rows)


@dataclass
class PreflightReport:
    """What :func:`preflight` found; ``print()`` it for the text to paste into a bug report.

    Taught in: notebook 00 §1."""

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
    """Check this machine for the course. Returns a report; ``print(report)`` for the full text.

    Taught in: notebook 00 §1."""
    versions = {d: _version(d) for d in ("torch", "transformers", "accelerate", "bitsandbytes",
                                           "huggingface-hub", "tokenizers", "codellama-course")}
    if versions["codellama-course"] is None:
        versions["codellama-course"] = f"{__version__} (source)"
    gpus = hardware.gpu_info()
    ram = hardware.ram_info()
    bnb_ok, bnb_note = hardware.bitsandbytes_status()
    online = hardware.hub_online()
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
    if hardware.environment() == "colab" and not bnb_ok:
        notes.append("Colab: run the setup cell at the top (it installs bitsandbytes), then restart the session.")
    if hardware.environment() == "colab" and ram["total_bytes"] and ram["total_bytes"] < 14 * 2**30:
        notes.append("Colab's ~12.7 GB host RAM: load 7B+ with device_map='auto' (load() does) and prefer 4bit.")
    return PreflightReport(
        environment=hardware.environment(), platform=f"{platform.system()} {platform.machine()}",
        python=platform.python_version(), versions=versions, gpus=gpus, ram=ram, disk=hardware.disk_info(),
        bitsandbytes_usable=bnb_ok, bitsandbytes_note=bnb_note, hf_token_present=hardware.hf_token_present(),
        hub_online=online, model=model, model_reason=reason, auto_precision=auto_precision(),
        fit=fit_table(capacity, where, context_tokens), notes=notes, cpu=hardware.cpu_info())
