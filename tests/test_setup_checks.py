"""scripts/setup_checks.py: which torch setup.sh installs, and which optional system packages it reports.
Decisions only: nothing is downloaded."""

from __future__ import annotations

import http.server
import importlib.util
import socket
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("_setup_checks", ROOT / "scripts" / "setup_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

CPU = ["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"]


def never_asked():
    raise AssertionError("the CPU index must not be probed here")


@pytest.mark.parametrize("system", ["Linux", "Windows"])
def test_no_gpu_gets_the_cpu_build_from_pytorchs_index(system):
    plan = checks.plan_torch(None, system, nvidia_gpu=False, cpu_index_reachable=lambda: True)
    assert plan.pip_args == CPU
    assert "CPU-only" in plan.reason


def test_no_gpu_and_no_cpu_index_falls_back_and_says_what_it_costs():
    plan = checks.plan_torch(None, "Linux", nvidia_gpu=False, cpu_index_reachable=lambda: False)
    assert plan.pip_args == ["torch==2.13.0"]
    assert "not reachable" in plan.reason and "CUDA build" in plan.reason and "GB" in plan.reason


def test_an_nvidia_gpu_gets_the_default_build():
    assert checks.plan_torch(None, "Linux", nvidia_gpu=True, cpu_index_reachable=never_asked).pip_args == ["torch==2.13.0"]


def test_macos_gets_the_default_build():
    assert checks.plan_torch(None, "Darwin", nvidia_gpu=False, cpu_index_reachable=never_asked).pip_args == ["torch==2.13.0"]


@pytest.mark.parametrize("gpu", [True, False])
def test_torch_spec_overrides(gpu):
    spec = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
    plan = checks.plan_torch(spec, "Linux", nvidia_gpu=gpu, cpu_index_reachable=never_asked)
    assert plan.pip_args == ["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cu128"]


def test_reachable_answers_fast_both_ways():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert checks.reachable(f"http://127.0.0.1:{server.server_address[1]}/", timeout=5)
    finally:
        server.shutdown()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert not checks.reachable(f"http://127.0.0.1:{port}/", timeout=5)


def test_missing_optional_packages_one_line_each(monkeypatch):
    monkeypatch.delenv("CHROMIUM_PATH", raising=False)
    lines = checks.missing_optional(which=lambda name: None)
    assert len(lines) == 3
    by_package = {line.split()[1]: line for line in lines}
    assert "evaluation sandbox" in by_package["bubblewrap"]
    assert "playground" in by_package["chromium"] and "test_playground.py" in by_package["chromium"]
    assert "MultiPL-E JavaScript" in by_package["nodejs"]


def test_present_packages_are_not_reported(monkeypatch):
    monkeypatch.delenv("CHROMIUM_PATH", raising=False)
    have = {"bwrap", "chromium-browser"}
    lines = checks.missing_optional(which=lambda name: f"/usr/bin/{name}" if name in have else None)
    assert [line.split()[1] for line in lines] == ["nodejs"]
