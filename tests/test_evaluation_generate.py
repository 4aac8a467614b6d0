"""Sampling for pass@k: leaderboard defaults, batching, stop sequences, backends, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from codellama_course.evaluation import HUMANEVAL_STOP_SEQUENCES, LEADERBOARD, SamplingConfig, generate
from codellama_course.evaluation.sampling import count_samples, read_samples

TASKS = {f"T/{i}": {"task_id": f"T/{i}", "prompt": f"def f{i}(x):\n    \"\"\"doc\"\"\"\n", "language": "python"}
         for i in range(12)}


def test_leaderboard_defaults():
    assert (LEADERBOARD.n_samples, LEADERBOARD.temperature, LEADERBOARD.top_p, LEADERBOARD.max_length) == (
        50, 0.2, 0.95, 512)
    assert LEADERBOARD.strip_prompt and LEADERBOARD.batch_size is None
    assert LEADERBOARD.stops_for("python") == HUMANEVAL_STOP_SEQUENCES
    assert LEADERBOARD.stops_for("js") == ["\nfunction ", "\n/*", "\n//", "\nconsole.log"]


class Recorder:
    """A fake backend: deterministic text from the seed; records every call."""

    def __init__(self, delay: float = 0.0):
        self.calls, self.delay = [], delay

    def __call__(self, prompt, n, config, stops, seed):
        self.calls.append((prompt, n, seed))
        time.sleep(self.delay)
        return [f"    return {seed % 1000} + {i}\ndef junk():\n" for i in range(n)]


def test_batches_stripped_prompts_and_stop_sequences(tmp_path):
    rec = Recorder()
    out = generate(dict(list(TASKS.items())[:2]), tmp_path / "s.jsonl", backend=rec, n_samples=5, batch_size=2,
                   progress=False)
    assert [n for _, n, _ in rec.calls] == [2, 2, 1, 2, 2, 1]  # n samples per task in batched calls
    assert all(p == TASKS["T/0"]["prompt"].strip() or p == TASKS["T/1"]["prompt"].strip() for p, _, _ in rec.calls)
    rows = read_samples(out)
    assert [r["task_id"] for r in rows] == ["T/0"] * 5 + ["T/1"] * 5
    assert all(r["completion"].startswith("    return ") and "junk" not in r["completion"] for r in rows)


def test_resume_keeps_what_is_there(tmp_path):
    path = tmp_path / "s.jsonl"
    generate(TASKS, path, backend=Recorder(), n_samples=4, batch_size=2, progress=False)
    before = path.read_bytes()
    rec = Recorder()
    generate(TASKS, path, backend=rec, n_samples=4, batch_size=2, progress=False)
    assert rec.calls == [] and path.read_bytes() == before  # nothing to do, nothing duplicated
    generate(TASKS, path, backend=rec, n_samples=6, batch_size=2, progress=False)  # ask for more
    assert len(rec.calls) == len(TASKS) and path.read_bytes().startswith(before)
    assert set(count_samples(path).values()) == {6}


SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from test_evaluation_generate import TASKS, Recorder
from codellama_course.evaluation import generate
generate(TASKS, {path!r}, backend=Recorder(delay={delay}), n_samples=4, batch_size=2, progress=False)
"""


def test_resume_after_a_kill_loses_and_duplicates_nothing(tmp_path):
    reference = generate(TASKS, tmp_path / "reference.jsonl", backend=Recorder(), n_samples=4, batch_size=2,
                         progress=False).read_bytes()
    path = tmp_path / "killed.jsonl"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), path=str(path), delay=0.05))
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(read_samples(path)) < 6:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    written = read_samples(path)
    assert 6 <= len(written) < len(TASKS) * 4  # killed part-way
    with open(path, "ab") as f:  # and as if it died in the middle of a write
        f.write(b'{"task_id": "T/9", "compl')
    generate(TASKS, path, backend=Recorder(), n_samples=4, batch_size=2, progress=False)
    assert path.read_bytes() == reference


def test_needs_a_backend(tmp_path):
    with pytest.raises(ValueError, match="needs model"):
        generate(TASKS, tmp_path / "x.jsonl")


def test_local_transformers_model(tmp_path):
    from _tiny_llama import make_tiny_llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = make_tiny_llama(tmp_path / "tiny", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                             num_attention_heads=2, num_key_value_heads=1)
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    problems = {f"t/{i}": {"task_id": f"t/{i}", "prompt": f"w{3 + i} w4 w5\n\n", "language": "python"} for i in range(2)}
    prompt_len = len(tok("w3 w4 w5").input_ids)
    cfg = SamplingConfig(n_samples=3, batch_size=2, max_length=prompt_len + 6)
    a = generate(problems, tmp_path / "a.jsonl", model=model, tokenizer=tok, config=cfg, progress=False)
    rows = read_samples(a)
    assert [r["task_id"] for r in rows] == ["t/0"] * 3 + ["t/1"] * 3
    # the 512-style budget counts the prompt: at most max_length - prompt tokens are new
    assert all(0 < len(tok(r["completion"]).input_ids) <= 6 for r in rows)
    b = generate(problems, tmp_path / "b.jsonl", model=model, tokenizer=tok, config=cfg, progress=False)
    assert a.read_bytes() == b.read_bytes()  # seeded per batch: reruns and resumes are reproducible
    # a stop sequence cuts the completion
    word = rows[0]["completion"].split()[2]
    c = generate(problems, tmp_path / "c.jsonl", model=model, tokenizer=tok, progress=False,
                 config=SamplingConfig(n_samples=3, batch_size=2, max_length=prompt_len + 6, stop=[" " + word]))
    assert word not in read_samples(c)[0]["completion"]


class _Server:
    """A local HTTP server that answers like TGI (POST /) and an OpenAI-compatible /v1/completions."""

    def __init__(self):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body))
                if self.path.endswith("/completions"):
                    reply = {"choices": [{"index": i, "text": f"    return {i}\nprint(1)"} for i in range(body["n"])]}
                else:
                    reply = [{"generated_text": "    return 42\ndef other():"}]
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_remote_tgi_endpoint(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the server is local
    server = _Server()
    try:
        out = generate(dict(list(TASKS.items())[:2]), tmp_path / "tgi.jsonl", endpoint=server.url, n_samples=3,
                       progress=False)
    finally:
        server.close()
    assert [r["completion"] for r in read_samples(out)] == ["    return 42"] * 6
    path, body = server.requests[0]
    params = body["parameters"]
    assert body["inputs"] == TASKS["T/0"]["prompt"].strip()
    assert params["temperature"] == 0.2 and params["top_p"] == 0.95 and params["do_sample"] is True
    assert params["stop"] == HUMANEVAL_STOP_SEQUENCES[:4] and 0 < params["max_new_tokens"] < 512


def test_remote_openai_compatible_endpoint(tmp_path):
    server = _Server()
    try:
        out = generate(dict(list(TASKS.items())[:2]), tmp_path / "oa.jsonl", endpoint=server.url + "/v1",
                       api="openai", model_name="codellama/CodeLlama-7b-hf", n_samples=3, progress=False)
    finally:
        server.close()
    assert [r["completion"] for r in read_samples(out)] == ["    return 0", "    return 1", "    return 2"] * 2
    path, body = server.requests[0]
    assert path == "/v1/completions" and body["n"] == 3 and body["model"] == "codellama/CodeLlama-7b-hf"
    assert len(server.requests) == 2  # one call per task
