"""The model switch, precision choice, loading, and every error load() promises."""

from __future__ import annotations

import pytest

import codellama_course.hardware as hardware
import codellama_course.loading as loading
from codellama_course import load, resolve_model
from codellama_course.loading import ENV_VAR, GatedModelError, LoadError, ModelNotAvailableError, ModelWillNotFitError
from codellama_course.memory import auto_precision
from codellama_course.precision import normalize_precision
from codellama_course.quantization import BitsAndBytesUnavailableError, quantization_config

from _tiny_llama import make_tiny_llama

GIB = 2**30


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def gpu_online(monkeypatch, no_env):
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    monkeypatch.setattr(hardware, "hub_online", lambda timeout=2.0: True)


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)


@pytest.fixture
def never_download(monkeypatch):
    """Fail the test if anything reaches from_pretrained."""
    import transformers

    def boom(*a, **k):
        raise AssertionError("from_pretrained must not be called")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", boom)


# ---- resolve_model -------------------------------------------------------------------------

def test_default_is_nano_without_gpu(monkeypatch, no_env):
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    monkeypatch.setattr(hardware, "hub_online", lambda timeout=2.0: True)
    assert resolve_model() == "nano"
    assert resolve_model(task="chat") == "nano"


def test_default_is_nano_offline(monkeypatch, no_env):
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model() == "nano"


@pytest.mark.parametrize("task,expected", [
    ("base", "codellama/CodeLlama-7b-hf"), ("infill", "codellama/CodeLlama-7b-hf"),
    ("chat", "codellama/CodeLlama-7b-Instruct-hf"), ("python", "codellama/CodeLlama-7b-Python-hf"),
])
def test_default_on_gpu_with_hub(gpu_online, task, expected):
    assert resolve_model(task=task) == expected


def test_env_var_and_argument(monkeypatch, gpu_online, tiny_dir):
    monkeypatch.setenv(ENV_VAR, "codellama/CodeLlama-13b-Instruct-hf")
    assert resolve_model() == "codellama/CodeLlama-13b-Instruct-hf"
    assert resolve_model("nano") == "nano"  # the argument wins
    monkeypatch.setenv(ENV_VAR, "13b")  # a bare size follows the lesson's flavour
    assert resolve_model(task="chat") == "codellama/CodeLlama-13b-Instruct-hf"
    assert resolve_model(task="base") == "codellama/CodeLlama-13b-hf"
    monkeypatch.setenv(ENV_VAR, "34b-python")
    assert resolve_model(task="chat") == "codellama/CodeLlama-34b-Python-hf"  # explicit flavour is kept
    monkeypatch.setenv(ENV_VAR, "NANO")
    assert resolve_model() == "nano"
    monkeypatch.setenv(ENV_VAR, str(tiny_dir))
    assert resolve_model() == str(tiny_dir)
    monkeypatch.setenv(ENV_VAR, "someone/fine-tune")
    assert resolve_model() == "someone/fine-tune"


def test_variant_and_path_objects(tiny_dir, no_env):
    from codellama_course import get_variant

    assert resolve_model(get_variant("13b-python")) == "codellama/CodeLlama-13b-Python-hf"
    assert resolve_model(tiny_dir) == str(tiny_dir)  # a pathlib.Path


def test_bad_task():
    with pytest.raises(ValueError, match="task"):
        resolve_model(task="translate")


# ---- precision -----------------------------------------------------------------------------

def test_precision_names():
    import torch

    assert normalize_precision(torch.bfloat16) == "bf16"
    assert normalize_precision("float16") == normalize_precision("half") == "fp16"
    assert normalize_precision("int8") == "8bit" and normalize_precision("NF4") == "4bit"
    assert normalize_precision(None) == normalize_precision("auto") == "auto"
    with pytest.raises(ValueError, match="precision"):
        normalize_precision("fp8")


def test_quantization_config_is_transformers5_style():
    import torch
    from transformers import BitsAndBytesConfig

    q4 = quantization_config("4bit")
    assert isinstance(q4, BitsAndBytesConfig) and q4.load_in_4bit and not q4.load_in_8bit
    assert q4.bnb_4bit_quant_type == "nf4" and q4.bnb_4bit_use_double_quant
    assert q4.bnb_4bit_compute_dtype in (torch.bfloat16, torch.float16)
    assert quantization_config("4bit", quant_type="fp4", double_quant=False).bnb_4bit_quant_type == "fp4"
    assert quantization_config("8bit").load_in_8bit
    assert quantization_config("fp16") is None and quantization_config("fp32") is None


def test_auto_precision_cpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (16 * GIB, "CPU RAM"))
    assert auto_precision() == "fp32"
    assert auto_precision("7b") == "bf16"  # 25 GiB of fp32 weights > half of 16 GiB
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (128 * GIB, "CPU RAM"))
    assert auto_precision("7b") == "fp32"


@pytest.mark.parametrize("bf16,capacity,model,expected", [
    (True, 79.2, "7b", "bf16"),     # A100 80 GB
    (False, 14.7, None, "fp16"),    # T4 without a model in mind
    (False, 14.7, "7b", "4bit"),    # T4: 7B fp16 + 4k KV cache does not fit comfortably
    (True, 22.0, "7b", "bf16"),     # L4 / A10G
    (True, 22.0, "13b", "4bit"),
])
def test_auto_precision_gpu(monkeypatch, bf16, capacity, model, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (int(capacity * GIB), "GPU"))
    monkeypatch.setattr(hardware, "bitsandbytes_status", lambda: (True, "test"))
    assert auto_precision(model) == expected


# ---- loading -------------------------------------------------------------------------------

@pytest.mark.parametrize("precision,dtype", [("fp32", "float32"), ("bf16", "bfloat16"), ("fp16", "float16")])
def test_load_local_folder_dense(tiny_dir, precision, dtype, capsys):
    model, tok = load(str(tiny_dir), precision)
    assert str(next(model.parameters()).dtype) == f"torch.{dtype}"
    info = model.codellama_course_info
    assert info.precision == precision and info.device == "cpu"
    assert info.footprint_bytes == model.get_memory_footprint()
    assert "tiny-llama" in capsys.readouterr().out  # it says which model it uses
    assert tok("w5 w6").input_ids[-2:] == [5, 6]
    assert not model.training


def test_load_auto_on_cpu_is_fp32(tiny_dir, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model, _ = load(str(tiny_dir), verbose=False)
    assert model.codellama_course_info.precision == "fp32"


@pytest.mark.parametrize("precision,layer", [("4bit", "Linear4bit"), ("8bit", "Linear8bitLt")])
def test_load_quantized_on_cpu(tiny_dir, precision, layer):
    import torch

    model, tok = load(str(tiny_dir), precision, verbose=False)
    kinds = {type(m).__name__ for m in model.modules()}
    assert layer in kinds
    assert type(model.lm_head).__name__ == "Linear"  # lm_head stays in the compute dtype
    with torch.no_grad():
        logits = model(torch.tensor([[1, 5, 6, 7]])).logits
    assert logits.shape == (1, 4, 512) and torch.isfinite(logits.float()).all()


def test_env_var_drives_load(tiny_dir, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tiny_dir))
    model, _ = load(precision="fp32", verbose=False)
    assert model.codellama_course_info.source == str(tiny_dir)


# ---- errors (each before anything is downloaded) ----------------------------------------------

def test_unknown_id_offline_says_how_to_use_nano(monkeypatch, never_download, no_env):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError) as err:
        load("someone/not-a-model")
    assert "nano" in str(err.value) and ENV_VAR in str(err.value)


def test_typo_offline_suggests_the_real_id(monkeypatch, never_download):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="codellama/CodeLlama-7b-hf"):
        load("codellama/CodeLlama-7b-hff")


def test_gated_without_token(monkeypatch, never_download, no_token):
    monkeypatch.setattr(hardware, "hub_online", lambda timeout=2.0: True)
    with pytest.raises(GatedModelError) as err:
        load("meta-llama/CodeLlama-7b-Instruct-hf")
    msg = str(err.value)
    assert "codellama/CodeLlama-7b-Instruct-hf" in msg and "HF_TOKEN" in msg
    assert isinstance(err.value, PermissionError)


def test_gated_with_token_goes_on_to_fit_check(monkeypatch, never_download, no_token):
    monkeypatch.setenv("HF_TOKEN", "hf_dummy_for_test")
    monkeypatch.setattr(hardware, "hub_online", lambda timeout=2.0: True)
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (1 * GIB, "test GPU"))
    with pytest.raises(ModelWillNotFitError):
        load("meta-llama/CodeLlama-7b-hf", "fp16")


def test_will_not_fit_is_raised_before_download(monkeypatch, never_download):
    monkeypatch.setattr(hardware, "hub_online", lambda timeout=2.0: True)
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (int(14.7 * GIB), "Tesla T4"))
    with pytest.raises(ModelWillNotFitError) as err:
        load("codellama/CodeLlama-34b-hf", "fp16")
    msg = str(err.value)
    assert "Nothing was downloaded" in msg and "Tesla T4" in msg
    assert "precision='4bit'" not in msg  # 34B 4-bit (~18 GiB) does not fit a T4 either
    with pytest.raises(ModelWillNotFitError, match="precision='4bit'"):
        load("codellama/CodeLlama-7b-hf", "fp32")  # 7B in 4-bit does fit: suggested


def test_will_not_fit_for_a_fine_tune_reads_only_its_config(monkeypatch, never_download, tmp_path):
    """A Hub model outside the family: only config.json is fetched, then the fit check runs."""
    import json

    import huggingface_hub

    cfg = {"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64,
           "num_key_value_heads": 8, "vocab_size": 32000, "rope_parameters": {"rope_theta": 1e6}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    fetched = []

    def fake_download(repo_id, filename, **kw):
        fetched.append(filename)
        return str(tmp_path / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(hardware, "hub_online", lambda timeout=2.0: True)
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (int(22 * GIB), "RTX 4090"))
    with pytest.raises(ModelWillNotFitError, match="some-org/Llama-70B-fine-tune"):
        load("some-org/Llama-70B-fine-tune", "4bit")
    assert fetched == ["config.json"]


def test_will_not_fit_local_folder(tiny_dir, monkeypatch, never_download):
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (1024, "test"))
    with pytest.raises(ModelWillNotFitError):
        load(str(tiny_dir), "fp32")


def test_check_fit_false_skips_the_check(tiny_dir, monkeypatch):
    import torch

    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (1024, "test"))
    with pytest.raises(ModelWillNotFitError):  # the same call with the check refuses: 1 KiB cannot hold it
        load(str(tiny_dir), "fp32", verbose=False)
    model, _ = load(str(tiny_dir), "fp32", check_fit=False, verbose=False)
    # loaded for real, in the precision asked for, past a capacity it does not fit in
    assert next(model.parameters()).dtype == torch.float32
    assert model.codellama_course_info.footprint_bytes > 1024


def test_4bit_without_bitsandbytes(tiny_dir, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else real_find_spec(name, *a))
    assert hardware.bitsandbytes_status()[0] is False
    for precision in ("4bit", "8bit"):
        with pytest.raises(BitsAndBytesUnavailableError, match="pip install") as err:
            load(str(tiny_dir), precision, verbose=False)
        assert isinstance(err.value, ImportError)


def test_missing_nano_folder_is_explained(monkeypatch, tmp_path, no_env):
    monkeypatch.setattr(loading, "nano_dir", lambda: tmp_path / "nano_model")
    with pytest.raises(ModelNotAvailableError, match="nano"):
        load("nano")


def test_load_nano(capsys):
    model, tok = load("nano")
    assert model.codellama_course_info.model == "nano"
    assert "nano" in capsys.readouterr().out
    ids = tok("def add(a, b):").input_ids
    assert ids[0] == tok.bos_token_id and len(ids) > 2


# ---- the checkpoint's own config.json decides; downloads are announced --------------------------

def _hub_cache(monkeypatch, tmp_path, repo_id: str, files: dict[str, str]) -> None:
    """A Hugging Face cache in tmp_path holding ``files`` (name -> text) of ``repo_id`` at refs/main."""
    import huggingface_hub

    repo = tmp_path / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for name, text in files.items():
        (snapshot / name).write_text(text)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))


def _llama_config(hidden: int, inter: int, layers: int, heads: int, kv: int, vocab: int) -> str:
    import json

    return json.dumps({"model_type": "llama", "hidden_size": hidden, "intermediate_size": inter,
                       "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
                       "vocab_size": vocab, "rope_theta": 1e6, "max_position_embeddings": 16384})


def test_fit_is_judged_by_the_checkpoint_config_not_the_table(monkeypatch, never_download, tmp_path, no_env):
    """A small checkpoint under a 70B id (a stand-in, a re-upload) is judged by its own config.json."""
    _hub_cache(monkeypatch, tmp_path, "codellama/CodeLlama-70b-hf",
               {"config.json": _llama_config(64, 128, 2, 4, 1, 32016), "model.safetensors": ""})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (1 * GIB, "test GPU"))
    with pytest.raises(AssertionError, match="from_pretrained must not be called"):  # got past the fit check
        load("70b", "fp32")
    assert auto_precision(loading._variant_from_checkpoint("codellama/CodeLlama-70b-hf", None, None)) == "fp32"


def test_fit_with_the_real_config_still_refuses(monkeypatch, never_download, tmp_path, no_env):
    _hub_cache(monkeypatch, tmp_path, "codellama/CodeLlama-70b-hf",
               {"config.json": _llama_config(8192, 28672, 80, 64, 8, 32016)})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (int(22 * GIB), "RTX 4090"))
    with pytest.raises(ModelWillNotFitError, match="Nothing was downloaded"):
        load("70b", "4bit")


def test_registry_numbers_when_no_config_is_at_hand(monkeypatch, never_download, no_env):
    """Online but the config cannot be fetched: the family table still protects the user."""
    import huggingface_hub

    def no_network(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    monkeypatch.setattr(hardware, "hub_online", lambda timeout=2.0: True)
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (int(14.7 * GIB), "Tesla T4"))
    with pytest.raises(ModelWillNotFitError, match="Tesla T4"):
        load("codellama/CodeLlama-13b-hf", "fp16")


def test_download_is_announced_before_it_starts(monkeypatch, never_download, capsys, tmp_path, no_env):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    monkeypatch.setattr(hardware, "hub_online", lambda timeout=2.0: True)
    monkeypatch.setattr(hardware, "capacity_bytes", lambda: (80 * GIB, "A100"))
    with pytest.raises(AssertionError, match="from_pretrained"):
        load("codellama/CodeLlama-7b-hf", "bf16")
    out = capsys.readouterr().out
    assert "Downloading codellama/CodeLlama-7b-hf: 13.5 GB" in out and "estimate" in out and "nano" in out


def test_no_download_notice_for_cached_weights_or_nano(monkeypatch, tmp_path):
    import json

    index = json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                       "b": "model-00002-of-00002.safetensors"}})
    _hub_cache(monkeypatch, tmp_path, "codellama/CodeLlama-7b-hf",
               {"config.json": "{}", "model.safetensors.index.json": index,
                "model-00001-of-00002.safetensors": ""})
    assert loading.download_notice("codellama/CodeLlama-7b-hf") is not None  # one shard is missing
    snapshot = next((tmp_path / "models--codellama--CodeLlama-7b-hf" / "snapshots").iterdir())
    (snapshot / "model-00002-of-00002.safetensors").write_text("")
    assert loading.download_notice("codellama/CodeLlama-7b-hf") is None
    assert loading.download_notice("nano") is None


@pytest.mark.parametrize("size", ["34b", "70b"])
def test_infill_task_takes_a_model_that_can_infill(size, monkeypatch, capsys, never_download):
    monkeypatch.setenv(ENV_VAR, size)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model(task="infill") == "codellama/CodeLlama-13b-hf"
    assert resolve_model(task="completion") == f"codellama/CodeLlama-{size}-hf"
    assert resolve_model(f"codellama/CodeLlama-{size}-hf", task="infill") == f"codellama/CodeLlama-{size}-hf"
    with pytest.raises(LoadError):  # not cached here; what matters is the sentence before it
        load(task="infill")
    out = capsys.readouterr().out
    assert out.startswith(f"{size.upper()} ") and "this lesson uses codellama/CodeLlama-13b-hf instead" in out


def test_infill_task_keeps_sizes_that_infill(monkeypatch):
    for size in ("7b", "13b"):
        assert resolve_model(size, task="infill") == f"codellama/CodeLlama-{size}-hf"
