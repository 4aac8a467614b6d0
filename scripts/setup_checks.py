#!/usr/bin/env python3
"""Decisions behind scripts/setup.sh, kept here so they can be tested (standard library only).

    python3 scripts/setup_checks.py torch-args   # pip arguments for torch (one per line); the reason on stderr
    python3 scripts/setup_checks.py torch-args --cpu   # the same for another machine without a GPU (wheelhouse)
    python3 scripts/setup_checks.py optional     # one line per missing optional system package, and what it adds

Which torch: ``$TORCH_SPEC`` when set (as given). Else ``torch==2.13.0``, and on a machine without an NVIDIA
GPU PyTorch's CPU-only build from its own index (https://download.pytorch.org/whl/cpu) when that index
answers within a few seconds; otherwise pip's default index, which on Linux means the CUDA build with its
NVIDIA libraries (several GB more, useless without a GPU) unless pip is configured with a CPU wheel.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Callable, NamedTuple

DEFAULT_TORCH = "torch==2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_SECONDS = 4.0


class TorchPlan(NamedTuple):
    pip_args: list[str]
    reason: str


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is loaded (Linux), or nvidia-smi lists a GPU (also WSL)."""
    if Path("/proc/driver/nvidia/version").exists():
        return True
    smi = shutil.which("nvidia-smi") or ("/usr/lib/wsl/lib/nvidia-smi" if Path("/usr/lib/wsl/lib/nvidia-smi").exists() else None)
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def reachable(url: str, timeout: float = PROBE_SECONDS) -> bool:
    """Does ``url`` answer within ``timeout`` seconds (name lookup included)?"""
    answered: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            answered.append(True)
        except Exception:
            answered.append(False)

    worker = threading.Thread(target=probe, daemon=True)  # a hung DNS lookup ignores socket timeouts
    worker.start()
    worker.join(timeout)
    return bool(answered and answered[0])


def plan_torch(torch_spec: str | None, system: str, nvidia_gpu: bool,
               cpu_index_reachable: Callable[[], bool]) -> TorchPlan:
    """The pip arguments that install torch here, and why (the decision only; nothing is downloaded)."""
    if torch_spec:  # as given; may carry pip options: "torch==2.13.0 --index-url https://.../cu128"
        return TorchPlan(shlex.split(torch_spec), f"TORCH_SPEC={torch_spec}")
    if nvidia_gpu:
        return TorchPlan([DEFAULT_TORCH], "NVIDIA GPU found: the default (CUDA) build")
    if system == "Darwin":
        return TorchPlan([DEFAULT_TORCH], "macOS: the default build (CPU and Apple GPU)")
    if cpu_index_reachable():
        return TorchPlan([DEFAULT_TORCH, "--index-url", CPU_INDEX], f"no NVIDIA GPU: the CPU-only build from {CPU_INDEX}")
    return TorchPlan([DEFAULT_TORCH], (
        f"no NVIDIA GPU, but {CPU_INDEX} is not reachable: installing from pip's default index. On Linux that is "
        "the CUDA build, which brings several GB of NVIDIA libraries a CPU cannot use (unless pip here is "
        "configured with a CPU wheel). To choose: TORCH_SPEC='torch==2.13.0 --index-url <a CPU index>'"))


# optional system packages: (command, Debian/Ubuntu package, what it adds)
OPTIONAL_PACKAGES = (
    ("bwrap", "bubblewrap", "the evaluation sandbox's first choice (without it, util-linux's unshare builds the same view)"),
    ("chromium", "chromium", "the playground's browser test (tests/test_playground.py)"),
    ("node", "nodejs", "running MultiPL-E JavaScript samples in the evaluation"),
)
CHROMIUM_COMMANDS = ("chromium", "chromium-browser", "google-chrome")


def _found(command: str, which: Callable[[str], str | None]) -> bool:
    if command == "chromium":
        path = os.environ.get("CHROMIUM_PATH")
        return bool(path and Path(path).exists()) or any(which(c) for c in CHROMIUM_COMMANDS)
    return which(command) is not None


def missing_optional(which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """One line per optional system package that is missing: the package and what it adds."""
    return [f"optional: {package:<10} missing → {adds} (apt-get install {package})"
            for command, package, adds in OPTIONAL_PACKAGES if not _found(command, which)]


def main(argv: list[str]) -> int:
    if argv in (["torch-args"], ["torch-args", "--cpu"]):
        gpu = "--cpu" not in argv and has_nvidia_gpu()
        plan = plan_torch(os.environ.get("TORCH_SPEC", "").strip() or None, platform.system(), gpu,
                          lambda: reachable(CPU_INDEX + "/"))
        print(f"==> torch: {plan.reason}", file=sys.stderr)
        print("\n".join(plan.pip_args))
        return 0
    if argv == ["optional"]:
        for line in missing_optional():
            print(line)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
