"""Real-repo rehearsal: every lesson notebook (00-07) runs with CODELLAMA_COURSE_MODEL=7b, 13b, 34b and 70b
against stand-ins of the real Hub repos (the real tokenizers and config fields, a shrunk random Llama), built
in a private offline Hugging Face cache by scripts/rehearsal.py. Skips where the reference vocabularies
(../shared/reference/codellama-tokenizers) are absent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "scripts"))  # importable by name: the rehearsal's worker processes need that
import rehearsal  # noqa: E402


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    """The stand-ins, built once for this module; every test that needs them skips without the reference."""
    missing = rehearsal.reference_missing()
    if missing:
        pytest.skip(f"rehearsal skipped: {missing}")
    home = tmp_path_factory.mktemp("rehearsal-hf-home")
    rehearsal.build_standins(home, rehearsal.SIZES)
    return home


def _snapshot(hf_home: Path, repo_id: str) -> Path:
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    return repo / "snapshots" / (repo / "refs" / "main").read_text()


@pytest.fixture(scope="module")
def hub(hf_home, monkeypatch_module):
    """huggingface_hub/transformers look into the stand-ins' cache, offline."""
    import huggingface_hub.constants as constants

    monkeypatch_module.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch_module.setattr(constants, "HF_HUB_OFFLINE", True)
    return hf_home


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


# ---- the stand-ins look like the Hub --------------------------------------------------------------------

@pytest.mark.parametrize("repo_id,vocab,theta,context", [
    ("codellama/CodeLlama-7b-hf", 32016, 1e6, 16384),
    ("meta-llama/CodeLlama-13b-Instruct-hf", 32016, 1e6, 16384),
    ("codellama/CodeLlama-34b-hf", 32000, 1e6, 16384),
    ("codellama/CodeLlama-70b-Instruct-hf", 32016, 10_000, 4096),
    ("codellama/CodeLlama-70b-Python-hf", 32000, 10_000, 4096),
])
def test_standin_config_has_the_real_fields_and_a_shrunk_architecture(hf_home, repo_id, vocab, theta, context):
    cfg = json.loads((_snapshot(hf_home, repo_id) / "config.json").read_text())
    assert (cfg["vocab_size"], cfg["rope_theta"], cfg["max_position_embeddings"]) == (vocab, theta, context)
    assert cfg["torch_dtype"] == "bfloat16" and cfg["num_hidden_layers"] <= 2 and cfg["hidden_size"] <= 64
    assert (cfg["num_key_value_heads"] < cfg["num_attention_heads"]) == ("34b" in repo_id or "70b" in repo_id)


def test_standin_tokenizers_have_the_real_ids(hub):
    from transformers import AutoTokenizer

    import codellama_course as cc
    from codellama_course.lessons import compare_chat
    from codellama_course.prompts import chat_style

    fim = ["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"]
    base = AutoTokenizer.from_pretrained("codellama/CodeLlama-7b-hf")
    assert base.convert_tokens_to_ids(fim) == [32007, 32008, 32009, 32010] and base.chat_template is None
    # the blog's infilling example: Meta's published ids (../shared/reference/codellama-tokenizers/README.md)
    assert cc.infill_ids(base, 'def remove_non_ascii(s: str) -> str:\n    """ ', "\n    return result\n") == [
        1, 32007, 822, 3349, 29918, 5464, 29918, 294, 18869, 29898, 29879, 29901, 851, 29897, 1599, 851, 29901, 13,
        1678, 9995, 29871, 32008, 13, 1678, 736, 1121, 13, 32009]
    instruct = AutoTokenizer.from_pretrained("codellama/CodeLlama-7b-Instruct-hf")
    assert cc.chat_ids(instruct, [{"role": "user", "content": "How are you doing?"}]) == [
        1, 518, 25580, 29962, 1128, 526, 366, 2599, 29973, 518, 29914, 25580, 29962]
    assert instruct.chat_template == cc.prompts.HUB_CHAT_TEMPLATE
    big = AutoTokenizer.from_pretrained("codellama/CodeLlama-70b-Instruct-hf")
    assert big.convert_tokens_to_ids("<step>") == 32015 and big.chat_template == cc.prompts.HUB_CHAT_TEMPLATE_70B
    assert chat_style(big) == "70b"
    # asked for the Llama 2 format, compare_chat renders the Hub's Llama 2 template, not the tokenizer's own 70B one
    question = [{"role": "user", "content": "How are you doing?"}]
    diff = compare_chat(big, question, style="llama2")
    assert diff.theirs == big.apply_chat_template(question, chat_template=cc.prompts.HUB_CHAT_TEMPLATE)["input_ids"]
    assert len(diff.changes) == 1  # the one id per turn of notebook 04: "[" instead of Meta's "▁["
    plain = AutoTokenizer.from_pretrained("codellama/CodeLlama-34b-hf")
    assert len(plain) == 32000 and all(plain.convert_tokens_to_ids(p) == plain.unk_token_id for p in fim)


def test_load_judges_a_standin_by_its_checkpoint(hub, monkeypatch):
    """13B/34B/70B stand-ins load on a CPU (the fit check reads their config.json, not the family table)."""
    import codellama_course as cc

    for size, repo in (("13b", "CodeLlama-13b-hf"), ("70b", "CodeLlama-70b-Instruct-hf")):
        monkeypatch.setenv("CODELLAMA_COURSE_MODEL", size)
        model, tokenizer = cc.load(task="chat" if "Instruct" in repo else "base", verbose=False)
        assert model.codellama_course_info.model == f"codellama/{repo}"
        assert model.config.num_hidden_layers == 2 and model.config.vocab_size == 32016
        assert tokenizer.convert_tokens_to_ids("▁<EOT>") == 32010


# ---- every lesson, every size ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def results(hf_home) -> dict:
    """Run notebooks 00-07 once per size, two kernels at a time (the whole rehearsal in one go)."""
    found = rehearsal.rehearse(rehearsal.SIZES, rehearsal.LESSONS, hf_home=hf_home, jobs=2)
    print("\n" + rehearsal.table(found, rehearsal.SIZES, rehearsal.LESSONS))
    return {(r.size, r.notebook): r for r in found}


@pytest.mark.parametrize("notebook", rehearsal.LESSONS)
@pytest.mark.parametrize("size", rehearsal.SIZES)
def test_lesson_runs_with_the_real_repo(results, size, notebook):
    result = results[(size, notebook)]
    assert result.ok, f"notebook {notebook} with CODELLAMA_COURSE_MODEL={size}: {result.error}"


def test_cli_skips_cleanly_without_the_reference(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(rehearsal, "REFERENCE_DIR", tmp_path / "absent")
    assert rehearsal.main(["--sizes", "7b"]) == 0
    assert capsys.readouterr().out.startswith("rehearsal skipped: reference vocabularies not available")


def test_kernel_environment_passes_the_switch_and_extra_settings(tmp_path):
    """What scripts/gpu_check.sh relies on: the model switch, the private offline cache, and --env settings."""
    env = rehearsal.notebook_env(tmp_path, "13b", {"CODELLAMA_COURSE_PRECISION": "fp16"})
    assert (env["CODELLAMA_COURSE_MODEL"], env["HF_HUB_OFFLINE"], env["CODELLAMA_COURSE_PRECISION"]) == (
        "13b", "1", "fp16")
    assert (env["HF_HOME"], env["HF_HUB_CACHE"]) == (str(tmp_path), str(tmp_path / "hub"))
    assert str(ROOT) in env["PYTHONPATH"].split(":")
