"""What this machine is: GPU, RAM, disk, the CPU's bf16, bitsandbytes, the Hub, a token. Probes only.

Each probe asks the machine (torch, /proc, the file system, a socket) and returns plain data; none raises.
Decisions that follow from the answers live above: :func:`codellama_course.precision.choose_precision`
(which precision ``"auto"`` means), ``memory.auto_precision`` (asks these probes, then decides), and
``preflight()`` (the report). Tests monkeypatch these functions, so every decision is checked on any machine.

One CPU question matters to the course: does it compute bfloat16 in hardware? With AVX512-BF16 or AMX (x86)
or the BF16 extension (Arm), a bf16 matmul is faster than fp32; without it torch emulates bf16 and a training
step of nano takes ~13x longer than in fp32 (measured on a 2-core AVX2 EPYC: 1.60 s vs 0.125 s).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

__all__ = ["cpu_capabilities", "cpu_has_native_bf16", "NATIVE_BF16_FEATURES", "cuda_available", "mps_available",
           "gpu_has_native_bf16", "gpu_name", "gpu_info", "cpu_info", "ram_info", "hf_cache_dir", "disk_info",
           "capacity_bytes", "bitsandbytes_status", "cpu_4bit_kernel_active", "hub_online", "hf_token_present",
           "environment"]

#: ``torch.cpu.get_capabilities()`` keys (cpuinfo's names) that mean bf16 arithmetic in hardware.
NATIVE_BF16_FEATURES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


# --------------------------------------------------------------------------------------------
# CPU


@lru_cache(maxsize=1)
def cpu_capabilities() -> Mapping[str, Any]:
    """torch's view of this CPU (``torch.cpu.get_capabilities()``: ISA flags, cores, caches); empty if unknown.

    Taught in: notebook 00 §1."""
    try:
        import torch

        return dict(torch.cpu.get_capabilities())
    except Exception:  # older torch (no get_capabilities), or cpuinfo could not read the CPU
        return {}


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16, AMX-BF16, Arm BF16); False when torch would
    emulate bf16 (AVX2-only x86, most laptops before 2023) or cannot tell.

    Taught in: notebook 00 §1."""
    caps = cpu_capabilities()
    return any(caps.get(feature) is True for feature in NATIVE_BF16_FEATURES)


def cpu_info() -> dict[str, Any]:
    """name, cores, torch's vector ISA (``AVX2``, ``AVX512``...) and whether bf16 is computed in hardware.

    Taught in: notebook 00 §1."""
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


# --------------------------------------------------------------------------------------------
# GPU


def cuda_available() -> bool:
    """Is there a CUDA (or ROCm) GPU torch can use? False when torch is missing or broken.

    Taught in: notebook 00 §3."""
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def mps_available() -> bool:
    """Is Apple's Metal backend (MPS) available?

    Taught in: notebook 01 §6."""
    try:
        import torch

        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    except Exception:
        return False


def gpu_has_native_bf16() -> bool:
    """Does the CUDA GPU compute in bf16 in hardware (compute capability >= 8.0: A100, L4, RTX 30xx+)?

    Not ``torch.cuda.is_bf16_supported()``: since torch 2.4 it also answers True on a T4 (7.5), where bf16
    is *emulated* (slowly). ROCm GPUs: True.

    Taught in: notebook 05 §2."""
    if not cuda_available():
        return False
    import torch

    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.4 has no emulation and no argument
        return bool(torch.cuda.is_bf16_supported())


def gpu_name() -> str:
    """The first CUDA GPU's name, or ``"this GPU"`` when it cannot be read.

    Taught in: notebook 05 §2."""
    try:
        import torch

        return torch.cuda.get_device_name(0)
    except Exception:
        return "this GPU"


def gpu_info() -> list[dict[str, Any]]:
    """One dict per CUDA GPU: name, total_bytes, free_bytes, compute_capability, bf16.

    Taught in: notebook 00 §1."""
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


# --------------------------------------------------------------------------------------------
# memory and disk


def ram_info() -> dict[str, int]:
    """total_bytes and available_bytes of host RAM (Linux /proc/meminfo, else psutil/sysconf).

    Taught in: notebook 00 §1."""
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


def capacity_bytes() -> tuple[int, str]:
    """(bytes available for a model, where): free VRAM summed over the GPUs, else available RAM.

    Taught in: notebook 01 §6."""
    gpus = gpu_info()
    if gpus:
        return sum(g["free_bytes"] for g in gpus), f"{len(gpus)}× {gpus[0]['name']}"
    return ram_info()["available_bytes"], "CPU RAM"


def hf_cache_dir() -> Path:
    """Where the Hugging Face Hub cache (the downloads) lives.

    Taught in: notebook 00 §1."""
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except Exception:
        return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def disk_info(path: Path | None = None) -> dict[str, Any]:
    """Free/total bytes on the disk that holds the Hugging Face cache (where downloads go).

    Taught in: notebook 00 §1."""
    path = Path(path) if path is not None else hf_cache_dir()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
        return {"path": str(path), "free_bytes": usage.free, "total_bytes": usage.total}
    except Exception:
        return {"path": str(path), "free_bytes": 0, "total_bytes": 0}


# --------------------------------------------------------------------------------------------
# bitsandbytes


def bitsandbytes_status() -> tuple[bool, str]:
    """(usable, why). Never raises. On CPU, bitsandbytes >= 0.48 has a working 4-bit/8-bit backend.

    Taught in: notebook 05 §2."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return False, "bitsandbytes is not installed (pip install bitsandbytes)"
    try:
        import bitsandbytes  # noqa: F401
        import torch
    except Exception as exc:  # broken CUDA setup, wrong wheel, ...
        return False, f"bitsandbytes is installed but fails to import: {type(exc).__name__}: {exc}"
    version = getattr(bitsandbytes, "__version__", "0")
    if torch.cuda.is_available():
        return True, f"bitsandbytes {version} (CUDA)"
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) >= (0, 48):
        return True, f"bitsandbytes {version} (CPU backend: works, but slower than a GPU)"
    return False, f"bitsandbytes {version} has no CPU backend; upgrade to >= 0.48 or use a GPU"


def cpu_4bit_kernel_active() -> bool:
    """Will 4-bit layers run bitsandbytes' fused CPU kernel here (no CUDA GPU, CPU with AVX512-BF16)?

    That kernel repacks each weight at its first forward pass and needs ``out_features % 32 == 0`` and
    ``in_features % blocksize == 0``. Other CPUs use a slower generic path without that restriction.

    Taught in: notebook 05 deep dive "pitfalls and fixes"."""
    try:
        import torch

        if torch.cuda.is_available():
            return False
        from bitsandbytes.functional import has_avx512bf16

        return bool(has_avx512bf16())
    except Exception:
        return False


# --------------------------------------------------------------------------------------------
# the Hub, a token, where we run (cheap, never print secrets)

_HUB_ONLINE: bool | None = None


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def hub_online(timeout: float = 2.0) -> bool:
    """Can the Hugging Face Hub be reached? False when HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set.

    Taught in: notebook 00 §3."""
    global _HUB_ONLINE
    if _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        return False
    if _HUB_ONLINE is None:
        import socket
        from urllib.parse import urlparse

        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        host = urlparse(endpoint).hostname or "huggingface.co"
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _HUB_ONLINE = True
        except OSError:
            _HUB_ONLINE = False
    return _HUB_ONLINE


def hf_token_present(token: str | bool | None = None) -> bool:
    """Is a Hugging Face token available (argument, HF_TOKEN, `hf auth login`, Colab secret)? Never shows it.

    Taught in: notebook 00 §1."""
    if isinstance(token, str) and token:
        return True
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return True
    try:
        from huggingface_hub import get_token

        return bool(get_token())
    except Exception:
        return False


def environment() -> str:
    """``"colab"``, ``"kaggle"`` or ``"local"``.

    Taught in: notebook 00 §1."""
    if "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG") or os.environ.get("COLAB_GPU"):
        return "colab"
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") or os.environ.get("KAGGLE_URL_BASE"):
        return "kaggle"
    return "local"
