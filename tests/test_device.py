"""Device-correct code: what a notebook or a helper creates follows the model's device, and parameter counts are
right for quantized models. The real proof is scripts/gpu_check.sh on a GPU; offline, these tests catch the
mistakes that broke on CUDA: tensor factories without a device, ``.numpy()`` on a possibly-CUDA tensor, and
tensors built on the CPU next to a model on another device (the ``meta`` device stands in for the GPU)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MODULES = sorted((ROOT / "codellama_course").rglob("*.py"))

FACTORIES = {"tensor", "as_tensor", "zeros", "ones", "full", "empty", "arange", "linspace", "rand", "randn",
             "randint"}


def device_problems(source: str) -> list[str]:
    """Lines where a torch factory has no ``device=`` (and is not ``.to(...)``-ed at once), ``.numpy()`` is not
    preceded by ``.cpu()``, or a tensor is sent to a hard-coded ``"cuda"``. A line whose comment says ``CPU``
    is a tensor meant for the CPU."""
    tree = ast.parse(source)
    lines = source.splitlines()
    moved = {id(node.func.value) for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "to"}
    problems = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        line = lines[node.lineno - 1]
        if "#" in line and "CPU" in line.split("#", 1)[1]:
            continue
        f = node.func
        if (f.attr in FACTORIES and isinstance(f.value, ast.Name) and f.value.id == "torch"
                and not any(k.arg == "device" for k in node.keywords) and id(node) not in moved):
            problems.append(f"torch.{f.attr} without device=: {line.strip()}")
        elif (f.attr == "numpy" and not (isinstance(f.value, ast.Call) and isinstance(f.value.func, ast.Attribute)
                                          and f.value.func.attr == "cpu")):
            problems.append(f".numpy() without .cpu(): {line.strip()}")
        elif f.attr in ("to", "cuda") and any(isinstance(a, ast.Constant) and a.value == "cuda" for a in node.args):
            problems.append(f'hard-coded "cuda": {line.strip()}')
    return problems


def _code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_the_check_finds_what_broke_on_cuda():
    assert device_problems("x = torch.tensor(levels)\n")
    assert device_problems("ax.hist(w.numpy())\n")
    assert device_problems("e = base ** -torch.arange(0, 8, 2, dtype=torch.float64)\n")
    assert device_problems('ids = ids.to("cuda")\n')
    assert not device_problems("x = torch.tensor(levels, device=w.device)\nax.hist(w.cpu().numpy())\n")
    assert not device_problems("x = torch.tensor([[1, 2]]).to(model.device)\n")
    assert not device_problems("x = torch.zeros(3)  # CPU on purpose: the caller moves it\n")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_notebook_tensors_follow_the_model(path):
    problems = [p for src in _code_cells(path) for p in device_problems(src)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_package_tensors_follow_the_model(path):
    problems = device_problems(path.read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


# ---- on another device: the meta device has no data, and refuses to mix with CPU tensors -------------------


def _notebook_function(notebook: str, name: str):
    """A function defined in a notebook's code cell, compiled on its own (with torch in its globals)."""
    import torch

    for src in _code_cells(ROOT / "notebooks" / notebook):
        for node in ast.parse(src).body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                scope = {"torch": torch}
                exec(compile(ast.Module([node], []), notebook, "exec"), scope)  # noqa: S102 - our own notebook
                return scope[name]
    raise LookupError(f"{name} is not defined in {notebook}")


def test_notebook05_fake_quantize_follows_the_weights_device():
    import torch

    from codellama_course.quantization import NF4_LEVELS

    fake_quantize = _notebook_function("05_quantization.ipynb", "fake_quantize")
    w = torch.randn(4, 128)
    on_meta = fake_quantize(w.to("meta"), NF4_LEVELS)  # a CPU levels table would raise here
    assert on_meta.device.type == "meta" and on_meta.shape == w.shape
    assert torch.equal(fake_quantize(w, NF4_LEVELS).abs().amax(dim=1), w.abs().amax(dim=1))  # absmax is exact


def test_nano_evaluate_loss_feeds_the_model_on_its_device():
    import torch
    from transformers import LlamaForCausalLM

    from codellama_course import nano
    from codellama_course.tokenizer import MetaTokenizer

    codec = MetaTokenizer.from_file(nano.NANO_DIR / "tokenizer.model")
    with torch.device("meta"):
        model = LlamaForCausalLM(nano.llama_config(nano.NanoConfig(hidden_size=64, intermediate_size=128,
                                                                        num_hidden_layers=1, num_attention_heads=2,
                                                                        context=32)))
    # Everything up to reading the loss runs on the model's device; with CPU inputs the loss mixes devices.
    with pytest.raises(RuntimeError, match=r"item\(\) cannot be called on meta tensors"):
        nano.evaluate_loss(model, codec, ["def f(x):\n    return x + 1\n" * 4], context=32, documents=1)


# ---- parameter counts --------------------------------------------------------------------------------------


def test_count_parameters_counts_4bit_weights_by_their_original_shape():
    pytest.importorskip("bitsandbytes")
    import codellama_course as cc
    from codellama_course.hardware import bitsandbytes_status

    if not bitsandbytes_status()[0]:
        pytest.skip(bitsandbytes_status()[1])
    dense, _ = cc.load("nano", "fp32", verbose=False)
    expected = sum(p.numel() for p in dense.parameters())
    assert cc.count_parameters(dense) == expected == cc.estimate_memory("nano", "fp32").n_params
    for precision in ("4bit", "8bit"):
        model, _ = cc.load("nano", precision, verbose=False)
        assert cc.count_parameters(model) == expected, precision
        assert cc.count_parameters(model) == model.num_parameters()  # transformers agrees
    q4, _ = cc.load("nano", "4bit", verbose=False)
    assert sum(p.numel() for p in q4.parameters()) < 0.7 * expected  # what notebook 00's exercise 2 used to sum


def test_count_parameters_on_the_meta_device():
    import torch

    with torch.device("meta"):
        layer = torch.nn.Linear(64, 32)
    from codellama_course import count_parameters

    assert count_parameters(layer) == 64 * 32 + 32


# ---- the precision switch ----------------------------------------------------------------------------------


def test_precision_env_var_sets_what_auto_means(monkeypatch):
    import torch

    import codellama_course as cc
    from codellama_course.precision import PRECISION_ENV_VAR

    monkeypatch.setenv(PRECISION_ENV_VAR, "BF16")
    assert cc.auto_precision("nano") == "bf16"
    assert cc.estimate_memory("nano", "auto").precision == "bf16"
    model, _ = cc.load("nano", verbose=False)
    assert model.dtype == torch.bfloat16 and model.codellama_course_info.precision == "bf16"
    model, _ = cc.load("nano", "fp32", verbose=False)  # an explicit precision wins
    assert model.dtype == torch.float32
    monkeypatch.setenv(PRECISION_ENV_VAR, "nf4-nodq")
    assert cc.auto_precision() == "nf4-nodq" and cc.estimate_memory("nano", "auto").precision == "4bit"
    monkeypatch.setenv(PRECISION_ENV_VAR, "auto")
    assert cc.auto_precision("nano") == "fp32"  # this machine's own choice (no GPU)


def test_precision_env_var_typo_names_the_variable(monkeypatch):
    import codellama_course as cc

    monkeypatch.setenv("CODELLAMA_COURSE_PRECISION", "bf61")
    with pytest.raises(ValueError, match=re.escape("CODELLAMA_COURSE_PRECISION='bf61'")):
        cc.load("nano", verbose=False)
