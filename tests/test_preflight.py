"""preflight(): machine facts, secrets never shown, the fit table against a hand-written one, the fit charts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from codellama_course import estimate_memory, preflight
from codellama_course.hardware import disk_info, environment, gpu_info, ram_info
from codellama_course.lessons import GPUS, plot_fit_chart
from codellama_course.memory import fit_status
from codellama_course.preflight import fit_table

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
    assert fit_status(80, 100) == "fits" and fit_status(85, 100) == "fits"
    assert fit_status(86, 100) == "tight" and fit_status(100, 100) == "tight"
    assert fit_status(101, 100) == "no"
    assert fit_status(1, 0) == "no"


# Hand-written: GiB each size needs with a 4,096-token context (weights + KV cache + activations), and the
# verdict on each memory size ("fits" <= 85 %, "tight" <= 100 %, "no"). Checkable on paper: 7B fp16 is Meta's
# 12.55 GiB checkpoint + 2 GiB of KV cache (0.5 MiB per token) + ~0.3 GiB of activations = 14.9 GiB, just over
# a T4's 14.7 GiB; 70B in 4-bit (35.9 GiB) is 91 % of an A100 40 GB: tight.
NEEDED_GIB = {  # size: (fp32, bf16, fp16, 8bit, 4bit)
    "7b": (29.7, 14.9, 14.9, 8.8, 5.9),
    "13b": (55.5, 27.8, 27.8, 16.0, 10.2),
    "34b": (128.5, 64.2, 64.2, 33.3, 18.3),
    "70b": (261.0, 130.5, 130.5, 66.8, 35.9),
}
EXPECTED_FIT = {  # GiB as torch reports it -> size -> verdicts (fp32, bf16, fp16, 8bit, 4bit)
    14.7: {"7b": "no no no fits fits", "13b": "no no no no fits", "34b": "no no no no no", "70b": "no no no no no"},
    22.0: {"7b": "no fits fits fits fits", "13b": "no no no fits fits", "34b": "no no no no fits",
           "70b": "no no no no no"},
    39.4: {"7b": "fits fits fits fits fits", "13b": "no fits fits fits fits", "34b": "no no no fits fits",
           "70b": "no no no no tight"},
    79.2: {"7b": "fits fits fits fits fits", "13b": "fits fits fits fits fits", "34b": "no fits fits fits fits",
           "70b": "no no no fits fits"},
}
PRECISIONS = ("fp32", "bf16", "fp16", "8bit", "4bit")


@pytest.mark.parametrize("gib", list(EXPECTED_FIT))
def test_fit_table_matches_the_hand_written_one(gib):
    table = fit_table(int(gib * GIB), f"{gib} GiB", context_tokens=4096, include_nano=False)
    assert [name for name, _ in table.rows] == [v.name for v in __import__("codellama_course").variants()]
    for name, cells in table.rows:
        size = name.split("-")[0]  # the flavours of a size need the same memory, to 0.1 GiB
        assert " ".join(cells[p][0] for p in PRECISIONS) == EXPECTED_FIT[gib][size], name
        assert [round(cells[p][1], 1) for p in PRECISIONS] == list(NEEDED_GIB[size]), name
    assert f"{gib} GiB" in str(table)


def test_fit_chart():
    import matplotlib.pyplot as plt

    ax = plot_fit_chart(precisions=("fp16", "4bit"), sizes=("7b", "13b", "34b", "70b"))
    assert len(ax.patches) == 2 * 4
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert heights[-1] == pytest.approx(estimate_memory("70b", "fp16", 4096).total_gib, rel=1e-3)
    # one line per memory size of the catalogue: 15 (T4), 22 (L4, A10G), 24 (3090, 4090), 39, 79, 140 GiB
    assert sorted(round(line.get_ydata()[0]) for line in ax.get_lines()) == [15, 22, 24, 39, 79, 140]
    assert len(GPUS) == 9
    plt.close("all")


def test_kv_chart():
    import matplotlib.pyplot as plt

    from codellama_course.lessons import plot_kv_cache
    from codellama_course.memory import kv_cache_bytes

    ax = plot_kv_cache(["7b", "34b"], max_tokens=100_000)
    lines = [l for l in ax.get_lines() if len(l.get_xdata()) > 2]
    assert len(lines) == 2
    assert lines[0].get_ydata()[-1] == pytest.approx(kv_cache_bytes("7b", 100_000) / GIB)
    plt.close("all")
