"""Errors a new user meets first, each with the message that says what was wrong and what to do."""

from __future__ import annotations

import pytest

import codellama_course.loading as loading
from codellama_course import load, resolve_model
from codellama_course.loading import ENV_VAR, ModelNotAvailableError
from codellama_course.registry import UnknownVariantError


@pytest.fixture
def offline_nothing_cached(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading, "_is_cached", lambda repo_id: False)


# ---- load() ------------------------------------------------------------------------------------

def test_the_right_name_offline_is_not_answered_with_a_suggestion(offline_nothing_cached):
    with pytest.raises(ModelNotAvailableError) as err:
        load("codellama/CodeLlama-7b-hf")
    message = str(err.value)
    assert "Did you mean" not in message
    assert "has not been downloaded" in message and "load('nano')" in message


def test_a_typo_offline_gets_the_real_name_only(offline_nothing_cached):
    with pytest.raises(ModelNotAvailableError) as err:
        load("codellama/CodeLlama-7b-hff")
    message = str(err.value)
    assert "Did you mean 'codellama/CodeLlama-7b-hf'" in message
    assert "'codellama/CodeLlama-7b-hff'?" not in message  # never the name typed


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_an_unknown_short_name_is_an_unknown_name(offline_nothing_cached, monkeypatch, how):
    if how == "environment":
        monkeypatch.setenv(ENV_VAR, "7bb-instruct")
        call = lambda: load()  # noqa: E731
    else:
        call = lambda: load("7bb-instruct")  # noqa: E731
    with pytest.raises(UnknownVariantError) as err:
        call()
    message = str(err.value)
    assert "'7bb-instruct' is not a Code Llama variant" in message
    assert "Did you mean '7b-instruct'" in message
    assert "cache" not in message


def test_a_short_hub_id_is_still_a_hub_id(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_model("gpt2") == "gpt2"  # nothing like a family name: the Hub decides


# ---- evaluation: an empty samples file -------------------------------------------------------

def test_evaluate_an_empty_samples_file(tmp_path):
    from codellama_course.evaluation import evaluate_functional_correctness

    empty = tmp_path / "samples.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="the samples file is empty"):
        evaluate_functional_correctness(str(empty), n_workers=1, progress=False)
    assert not (tmp_path / "samples.jsonl_results.jsonl").exists()


@pytest.mark.parametrize("flags", [[], ["--ignore-incomplete"]])
def test_cli_on_an_empty_samples_file(tmp_path, capsys, flags):
    from codellama_course.evaluation.__main__ import main

    empty = tmp_path / "samples.jsonl"
    empty.write_text("\n")
    assert main([str(empty), "--quiet", "--workers", "1", *flags]) == 2
    out = capsys.readouterr()
    assert "the samples file is empty" in out.err
    assert "{}" not in out.out and "not attempted" not in out.err


def test_preflight_stays_callable_after_the_package_used_its_module():
    """`preflight` is a submodule and a function: using load()'s helpers first must not shadow the function."""
    code = ("import codellama_course as cc; cc.auto_precision('7b'); "
            "print(type(cc.preflight).__name__, callable(cc.preflight))")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["function", "True"]
