"""preflight(): machine facts, secrets never shown, fit table consistent with the estimates, charts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from codellama_course import estimate_memory, preflight
from codellama_course.preflight import (COMMON_GPUS, disk_info, environment, fit_status, fit_table, gpu_info,
                                        plot_fit_chart, ram_info)

GIB = 2**30


def test_report_sections():
    report = preflight()
    text = str(report)
    for label in ("environment", "python", "packages", "GPU", "RAM", "disk (HF cache)", "bitsandbytes", "HF token",
                  "model", "Fit on"):
        assert label in text, label
    assert repr(report) == text
    import torch
    import transformers

    assert report.versions["torch"] == torch.__version__.split("+")[0] or torch.__version__ in text
    assert transformers.__version__ in text
    assert report.has_gpu == torch.cuda.is_available()
    names = [name for name, _ in report.fit.rows]
    assert names[:12] == [v for v in __import__("codellama_course").variants().names()]


def test_token_is_never_printed(monkeypatch):
    secret = "hf_THIS_IS_A_SECRET_TOKEN_123"
    monkeypatch.setenv("HF_TOKEN", secret)
    report = preflight()
    assert report.hf_token_present is True
    assert secret not in str(report) and secret not in repr(report) and secret not in str(report.as_dict())
    monkeypatch.delenv("HF_TOKEN")
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert preflight().hf_token_present is False


@pytest.mark.parametrize("var,expected", [("COLAB_RELEASE_TAG", "colab"), ("KAGGLE_KERNEL_RUN_TYPE", "kaggle")])
def test_environment_detection(monkeypatch, var, expected):
    for v in ("COLAB_RELEASE_TAG", "COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.delitem(__import__("sys").modules, "google.colab", raising=False)
    assert environment() == "local"
    monkeypatch.setenv(var, "x")
    assert environment() == expected


def test_machine_probes():
    ram = ram_info()
    assert ram["total_bytes"] >= ram["available_bytes"] > 0
    import torch

    assert (gpu_info() == []) == (not torch.cuda.is_available())


def test_disk_info_for_missing_folder(tmp_path):
    d = disk_info(tmp_path / "not" / "yet" / "there")
    assert d["free_bytes"] > 0 and d["total_bytes"] >= d["free_bytes"]


def test_fit_status_thresholds():
    assert fit_status(80, 100) == "fits"
    assert fit_status(95, 100) == "tight"
    assert fit_status(101, 100) == "no"
    assert fit_status(1, 0) == "no"


@pytest.mark.parametrize("gpu", list(COMMON_GPUS))
def test_fit_table_agrees_with_estimates(gpu):
    cap = int(COMMON_GPUS[gpu] * GIB)
    table = fit_table(cap, gpu, context_tokens=4096, include_nano=False)
    order = ["fp32", "fp16", "8bit", "4bit"]  # descending memory
    for name, cells in table.rows:
        for p, (status, gib) in cells.items():
            est = estimate_memory(name, p, 4096)
            assert status == fit_status(est.total_bytes, cap)
            assert gib == pytest.approx(est.total_gib)
        # if a bigger precision fits, every smaller one fits too
        ok = [cells[p][0] != "no" for p in order]
        assert ok == sorted(ok), (name, ok)
    assert gpu in str(table)


def test_fit_table_known_cases():
    t4 = fit_table(int(14.7 * GIB), "T4", 4096, include_nano=False)
    assert t4.status("7b", "4bit") == "fits" and t4.status("70b", "4bit") == "no"
    assert t4.status("7b", "fp16") != "fits"
    a100 = fit_table(int(79.2 * GIB), "A100 80 GB", 4096, include_nano=False)
    assert a100.status("70b", "4bit") == "fits" and a100.status("70b", "fp16") == "no"
    assert a100.status("34b", "fp16") in ("fits", "tight")


def test_fit_chart():
    import matplotlib.pyplot as plt

    ax = plot_fit_chart(precisions=("fp16", "4bit"), sizes=("7b", "13b", "34b", "70b"))
    assert len(ax.patches) == 2 * 4
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert heights[-1] == pytest.approx(estimate_memory("70b", "fp16", 4096).total_gib, rel=1e-3)
    distinct = {round(v) for v in COMMON_GPUS.values()}
    assert len(ax.get_lines()) == len(distinct)
    plt.close("all")


def test_kv_chart():
    import matplotlib.pyplot as plt

    from codellama_course.memory import kv_cache_bytes, plot_kv_cache

    ax = plot_kv_cache(["7b", "34b"], max_tokens=100_000)
    lines = [l for l in ax.get_lines() if len(l.get_xdata()) > 2]
    assert len(lines) == 2
    assert lines[0].get_ydata()[-1] == pytest.approx(kv_cache_bytes("7b", 100_000) / GIB)
    plt.close("all")
