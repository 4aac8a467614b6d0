"""The playground (notebook 07): its generation backend on nano, the Gradio app, and a real browser.

The browser test starts the app, drives Debian's headless Chromium with Playwright (no browser download:
``executable_path``), types a prompt, presses Generate, watches the text stream in, and saves a
screenshot under ``test-artifacts/`` (git-ignored; CI keeps it as an artifact)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from codellama_course import playground
from codellama_course.serving import Sampling

ROOT = Path(__file__).resolve().parents[1]
NANO_DIR = ROOT / "codellama_course" / "nano_model"
ARTIFACTS = ROOT / "test-artifacts"

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-default-apps", "--disable-extensions"]


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def nano_backend():
    return playground.LocalBackend(str(NANO_DIR), label="nano")


def test_analytics_off_and_examples():
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert sum("<FILL_ME>" in e for e in playground.EXAMPLES) >= 2
    assert 'class Circle():\n """ <FILL_ME>' in playground.EXAMPLES  # the Space's infilling example


def test_one_fill_me_only():
    assert playground._split("def f():") is None
    assert playground._split("a<FILL_ME>b") == ("a", "b")
    with pytest.raises(ValueError, match="exactly one"):
        playground._split("<FILL_ME> and <FILL_ME>")


def test_infill_streams_exact_ids_and_says_why_it_stopped(nano_backend):
    from codellama_course.prompts import infill_ids, infill_stop_ids

    code = "def add(a, b):\n    <FILL_ME>\n"
    steps = list(nano_backend.stream(code, Sampling(temperature=0, max_new_tokens=24), threading.Event()))
    out, d = steps[-1]
    tok = nano_backend.tokenizer
    assert d.mode == "infill" and d.prompt_ids == infill_ids(tok, "def add(a, b):\n    ", "\n")
    assert d.prompt_pieces[:2] == ["<s>", "▁<PRE>"] and d.prompt_pieces[-1] == "▁<MID>"
    assert out.startswith("def add(a, b):\n    ") and out.endswith("\n")
    assert 1 <= d.new_tokens == len(d.generated_ids) <= 24
    if d.generated_ids[-1] in infill_stop_ids(tok):
        assert d.stop_reason.startswith(("end of the infill", "end of sequence"))
    else:
        assert d.stop_reason.startswith("token budget") and d.new_tokens == 24
    assert len(steps) >= min(d.new_tokens, 2)  # one update per token, plus the final one
    md = d.markdown()
    assert "Stopped because" in md and str(d.prompt_ids) in md and "exactly what the model sees" in md


def test_completion_budget_and_stop_button(nano_backend):
    s = Sampling(temperature=0, max_new_tokens=5, repetition_penalty=1.3)
    out, d = list(nano_backend.stream("import os\n", s, threading.Event()))[-1]
    assert out.startswith("import os\n") and d.mode == "completion" and d.prompt_ids[0] == 1
    assert d.new_tokens <= 5
    if d.new_tokens == 5:
        assert "max new tokens (5)" in d.stop_reason
    cancel = threading.Event()
    cancel.set()  # pressed Stop before the first token
    out, d = list(nano_backend.stream("def f():", Sampling(max_new_tokens=200), cancel))[-1]
    assert "stopped by you" in d.stop_reason and d.new_tokens <= 1


def test_build_app_has_the_space_controls(nano_backend):
    demo = playground.build_app(nano_backend)
    assert demo.analytics_enabled is False
    config = demo.get_config_file()
    sliders = {c["props"]["label"]: c["props"]["value"] for c in config["components"]
               if c.get("type") == "slider"}
    assert sliders == {"Temperature": 0.1, "Top-p (nucleus sampling)": 0.9, "Max new tokens": 256,
                       "Repetition penalty": 1.05}
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert {"code-input", "generate", "stop", "output", "details"} <= ids


@pytest.mark.slow
def test_browser_types_generates_and_sees_streamed_text(nano_backend):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium found (/usr/bin/chromium): install it with `apt-get install chromium` "
                    "(.ci/run does); the test never downloads a browser")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    prompt = "def fibonacci(n):\n"
    pg = playground.launch_playground(nano_backend, inline=False)  # returns at once
    try:
        assert pg.url.startswith("http://127.0.0.1:")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 1400})
                page.set_default_timeout(60_000)
                page.goto(pg.url, wait_until="domcontentloaded")
                page.locator("#code-input textarea").fill(prompt)
                # two controls, through the UI: the number boxes of the sliders (Settings accordion)
                page.get_by_text("Settings (the Space's defaults)").click()
                for elem_id, value in (("repetition-penalty", "1.5"), ("max-new-tokens", "64")):
                    box = page.locator(f"#{elem_id} input[type=number]")
                    box.wait_for(state="visible")
                    for _ in range(5):  # a box filled while the accordion is still opening can be reset
                        box.fill(value)
                        box.press("Enter")
                        box.press("Tab")
                        time.sleep(0.3)
                        if box.input_value() == value:
                            break
                    assert box.input_value() == value, f"could not set {elem_id} to {value}"
                page.locator("#generate").click()
                output = page.locator("#output textarea")
                details = page.locator("#details")
                snapshots: list[str] = []
                streamed_before_end = False
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:  # bounded polling
                    text = output.input_value()
                    info = details.inner_text()
                    if text and (not snapshots or text != snapshots[-1]):
                        snapshots.append(text)
                        if "generating" in info and len(text) > len(prompt):
                            streamed_before_end = True
                    if "Stopped because:" in info and "generating" not in info:
                        break
                    time.sleep(0.03)
                else:
                    page.screenshot(path=str(ARTIFACTS / "playground-timeout.png"), full_page=True)
                    pytest.fail(f"generation did not finish in 120 s; saw {snapshots[-1:]!r}")
                page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)
                final = output.input_value()
                info = details.inner_text()
            finally:
                browser.close()
    finally:
        pg.stop()
    assert final.startswith(prompt) and len(final) > len(prompt), final
    assert streamed_before_end, f"no partial output seen while generating: {snapshots[:5]!r}"
    assert len(snapshots) >= 2, snapshots
    assert "repetition penalty 1.5" in info and "max new tokens 64" in info, info  # the sliders reached the backend
    assert "Prompt token ids" in info and "[1," in info
    assert (ARTIFACTS / "playground.png").stat().st_size > 10_000
