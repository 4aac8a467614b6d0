"""Serving (notebook 07): a real `transformers serve` with the nano model, queried with the course's client
code (openai client completions + FIM, huggingface_hub InferenceClient chat, streaming), and the errors.

The server tests share one server (module fixture, ~5-10 s to start on 2 cores)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from codellama_course import serving
from codellama_course.serving import (
    SPACE_DEFAULTS,
    EndpointUnreachableError,
    LocalServer,
    ModelNotFoundError,
    PortInUseError,
    Sampling,
    ServerStartError,
)

NANO_DIR = Path(serving.__file__).resolve().parent / "nano_model"
GREEDY = Sampling(temperature=0, max_new_tokens=12, repetition_penalty=1.0)


# --------------------------------------------------------------------------------------------
# sampling parameters


def test_space_defaults():
    assert (SPACE_DEFAULTS.temperature, SPACE_DEFAULTS.top_p, SPACE_DEFAULTS.max_new_tokens,
            SPACE_DEFAULTS.repetition_penalty) == (0.1, 0.9, 256, 1.05)


def test_sampling_for_each_server():
    s = Sampling(temperature=0.2, top_p=0.8, max_new_tokens=40, repetition_penalty=1.1, seed=3)
    t = s.openai_kwargs("transformers")
    gen = json.loads(t["extra_body"]["generation_config"])
    assert gen == {"do_sample": True, "max_new_tokens": 40, "repetition_penalty": 1.1, "temperature": 0.2, "top_p": 0.8}
    assert t["max_tokens"] == 40 and t["seed"] == 3 and "temperature" not in t
    v = s.openai_kwargs("vllm")
    assert v["extra_body"] == {"repetition_penalty": 1.1} and v["temperature"] == 0.2 and v["top_p"] == 0.8
    assert "extra_body" not in s.openai_kwargs("openai")
    assert s.tgi_kwargs() == {"max_new_tokens": 40, "repetition_penalty": 1.1, "do_sample": True,
                              "temperature": 0.2, "top_p": 0.8, "seed": 3}
    greedy = Sampling(temperature=0)
    assert json.loads(greedy.openai_kwargs()["extra_body"]["generation_config"])["do_sample"] is False
    assert "temperature" not in greedy.tgi_kwargs() and greedy.generate_kwargs()["do_sample"] is False
    with pytest.raises(ValueError, match="flavor"):
        s.openai_kwargs("tgi-native")


@pytest.mark.parametrize("kw", [{"temperature": -1}, {"top_p": 0}, {"max_new_tokens": 0}, {"repetition_penalty": 0}])
def test_sampling_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        Sampling(**kw)


# --------------------------------------------------------------------------------------------
# errors that need no server


def test_free_port_and_port_in_use():
    port = serving.free_port()
    assert not serving.port_in_use(port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert serving.port_in_use(port)


def test_only_loopback_hosts():
    with pytest.raises(ValueError, match="loopback"):
        LocalServer(NANO_DIR, host="0.0.0.0")


def test_model_not_found(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        LocalServer(tmp_path / "no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        LocalServer(tmp_path / "empty")


def test_hub_id_offline_and_not_cached(monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache"):
        LocalServer("codellama/CodeLlama-7b-hf")


def test_endpoint_unreachable():
    url = f"http://127.0.0.1:{serving.free_port()}"  # nothing listens there
    with pytest.raises(EndpointUnreachableError, match="Nothing answers"):
        serving.check_endpoint(url, timeout=2)
    with pytest.raises(EndpointUnreachableError, match="Could not connect"):
        serving.api_complete(serving.openai_client(url, timeout=5), "def f():", model="m")
    with serving.inference_client(url, timeout=5) as client, \
            pytest.raises(EndpointUnreachableError, match="Could not connect"):
        serving.api_chat(client, [{"role": "user", "content": "hi"}], max_tokens=4)


def test_inference_client_lifts_offline_mode_for_loopback_only(monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with serving.inference_client("http://127.0.0.1:9"):
        assert hub_constants.HF_HUB_OFFLINE is False
    assert hub_constants.HF_HUB_OFFLINE is True
    with serving.inference_client("https://example.invalid"):
        assert hub_constants.HF_HUB_OFFLINE is True


def test_recipes_cover_the_real_world():
    text = "\n".join(serving.RECIPES.values())
    for needle in ("ghcr.io/huggingface/text-generation-inference", "/generate_stream", "/generate ",
                   "text_generation(", "--tensor-parallel-size", "bitsandbytes", "api_chat(", "api_infill("):
        assert needle in text, needle
    assert "A10G" in serving.ENDPOINT_GPUS["7B"] and "A100" in serving.ENDPOINT_GPUS["13B"]
    assert "2x A100" in serving.ENDPOINT_GPUS["34B"] and "bitsandbytes" in serving.ENDPOINT_GPUS["34B"]
    assert "maintenance" in serving.PROJECT_STATUS["TGI"]


def test_port_in_use_is_reported_before_starting(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # enough for LocalServer(); nothing is started
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        server = LocalServer(tmp_path, port=port)
        with pytest.raises(PortInUseError, match=f"Port {port}"):
            server.start()
        assert not server.is_running


@pytest.mark.slow
def test_server_that_fails_to_start_shows_its_log(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}')
    server = LocalServer(broken, startup_timeout=120)
    with pytest.raises(ServerStartError, match="exited with code") as info:
        server.start()
    message = str(info.value)
    assert "ValueError" in message.splitlines()[0]  # the reason, up front
    assert info.value.log_tail and "last lines of the server log" in message
    assert not server.is_running


# --------------------------------------------------------------------------------------------
# FIM prompts for a text API


def test_fim_prompt_text_uses_the_special_pieces():
    from transformers import AutoTokenizer

    from codellama_course.prompts import infill_ids

    tok = AutoTokenizer.from_pretrained(NANO_DIR)
    fp = serving.fim_prompt(tok, "def add(a, b):\n    return<FILL_ME>\n")
    assert fp.text.startswith("▁<PRE>") and "▁<SUF>" in fp.text and fp.text.endswith("▁<MID>")
    assert fp.ids == infill_ids(tok, "def add(a, b):\n    return", "\n")
    assert fp.server_ids == list(tok(fp.text).input_ids)  # what a server that tokenizes the text sees
    assert fp.exact == (fp.ids == fp.server_ids)
    # the FIM special ids are there either way
    assert [i for i in fp.server_ids if i in fp.ids[1:2]] == fp.ids[1:2]
    simple = serving.fim_prompt(tok, "def f(x):", " return x")
    assert simple.exact, simple.first_difference()
    # The Space's text template does not reach the special pieces with a tokenizer like nano's
    space = tok(serving.SPACE_FIM_TEMPLATE.format(prefix="def f(x):", suffix=" return x")).input_ids
    assert fp.ids[1] not in space
    with pytest.raises(ValueError, match="exactly one"):
        serving.fim_prompt(tok, "a <FILL_ME> b <FILL_ME>")


def test_fim_over_text_is_not_exact_with_code_llamas_real_vocabulary(tmp_path):
    """What notebook 07 states: with CodeLlama-7b/13b's vocabulary, a text FIM prompt re-tokenized by the
    Hugging Face tokenizer (what a server does) differs from Meta's ids on whitespace runs."""
    from _meta_reference import (GOLDEN_INFILL, GOLDEN_PREFIX, GOLDEN_SUFFIX, VOCAB_7B, load_tokenizer,
                                 make_folder, require)

    tok = load_tokenizer(make_folder(tmp_path / "cl7b", require(VOCAB_7B)))
    fp = serving.fim_prompt(tok, GOLDEN_PREFIX, GOLDEN_SUFFIX)
    assert fp.ids == GOLDEN_INFILL  # what we meant to send: Meta's ids
    assert not fp.exact and fp.first_difference() == 18  # the indentation before '"""'
    assert tok.convert_ids_to_tokens(fp.ids[18:20]) == ["▁▁▁", '▁"""']
    assert tok.convert_ids_to_tokens(fp.server_ids[18:20]) == ["▁▁▁▁", '""']
    assert serving.fim_prompt(tok, "    <FILL_ME>").exact  # no whitespace run next to a word: exact
    # the Space's text template reaches the special pieces on this tokenizer, but is not exact either
    space = list(tok(serving.SPACE_FIM_TEMPLATE.format(prefix=GOLDEN_PREFIX, suffix=GOLDEN_SUFFIX)).input_ids)
    assert space[1] == GOLDEN_INFILL[1] and space != GOLDEN_INFILL


# --------------------------------------------------------------------------------------------
# the real server


@pytest.fixture(scope="module")
def server():
    with LocalServer(None, startup_timeout=180) as srv:  # None = the course default: nano offline
        yield srv
    assert not srv.is_running


@pytest.mark.slow
def test_server_is_healthy_and_lists_nano(server):
    info = server.check()
    assert info["health"] == 200
    assert info["models"] == [server.model_id] and Path(server.model_id) == NANO_DIR
    assert server.url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
    assert "transformers serve" in server.shell_command()


@pytest.mark.slow
def test_completion_streaming_matches_non_streaming(server):
    client = serving.openai_client(server)
    prompt = "def fibonacci(n):\n"
    full = serving.api_complete(client, prompt, sampling=GREEDY)
    pieces = list(serving.api_complete(client, prompt, sampling=GREEDY, stream=True))
    raw = client.completions.create(model=server.model_id, prompt=prompt, **GREEDY.openai_kwargs())
    assert raw.choices[0].finish_reason in ("length", "stop")
    assert 1 <= raw.usage.completion_tokens <= GREEDY.max_new_tokens
    assert isinstance(full, str) and full == raw.choices[0].text  # greedy: deterministic
    assert len(pieces) >= min(2, raw.usage.completion_tokens), pieces  # streamed token by token
    assert "".join(pieces) == full  # the same text either way


@pytest.mark.slow
def test_sampling_parameters_reach_the_server(server):
    client = serving.openai_client(server)
    texts = {serving.api_complete(client, "import ", sampling=Sampling(temperature=1.0, top_p=1.0, max_new_tokens=8,
                                                                       seed=s)) for s in range(4)}
    assert len(texts) > 1, "temperature 1.0 with different seeds should sample different texts"
    one = Sampling(max_new_tokens=3, temperature=0)
    out = client.completions.create(model=server.model_id, prompt="def", **one.openai_kwargs())
    assert out.usage.completion_tokens <= 3


@pytest.mark.slow
def test_infill_through_the_completions_api(server):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(server.model_id)
    middle = serving.api_infill(serving.openai_client(server), tok, "def add(a, b):\n    return <FILL_ME>\n",
                                sampling=GREEDY)
    assert isinstance(middle, str) and "<EOT>" not in middle and "<FILL_ME>" not in middle
    streamed = "".join(serving.api_infill(serving.openai_client(server), tok, "def add(a, b):\n    return <FILL_ME>\n",
                                          sampling=GREEDY, stream=True))
    assert streamed == middle


@pytest.mark.slow
def test_chat_completion_with_inference_client(server):
    messages = [{"role": "user", "content": "Write a function that adds two numbers."}]
    with serving.inference_client(server) as client:
        reply = serving.api_chat(client, messages, model=server.model_id, max_tokens=10, temperature=0)
        pieces = list(serving.api_chat(client, messages, model=server.model_id, max_tokens=10, temperature=0,
                                       stream=True))
    assert isinstance(reply, str) and reply
    assert len(pieces) >= 2 and "".join(pieces) == reply


@pytest.mark.slow
def test_chat_completion_with_openai_client(server):
    client = serving.openai_client(server)
    out = client.chat.completions.create(model=server.model_id, max_tokens=6,
                                         messages=[{"role": "user", "content": "hello"}])
    assert out.choices[0].message.role == "assistant" and out.usage.completion_tokens <= 6


@pytest.mark.slow
def test_tgi_text_generation_is_not_served_here(server):
    from huggingface_hub.errors import HfHubHTTPError

    with serving.inference_client(server) as client, pytest.raises(HfHubHTTPError, match="404"):
        client.text_generation("def f():", max_new_tokens=4)


@pytest.mark.slow
def test_server_log_is_captured(server):
    assert server.log_path is not None and server.log_path.exists()
    assert "POST /v1/completions" in server.log_path.read_text(errors="replace") or \
        "Uvicorn running" in server.log_tail(200)


@pytest.mark.slow
def test_remote_playground_backend_against_the_server(server):
    from codellama_course.playground import RemoteBackend

    backend = RemoteBackend(server)
    assert backend.tokenizer is not None  # loaded from the served folder
    steps = list(backend.stream("def add(a, b):\n    return <FILL_ME>\n", GREEDY, threading.Event()))
    out, details = steps[-1]
    assert details.mode == "infill" and out.startswith("def add(a, b):\n    return ") and out.endswith("\n")
    assert details.prompt_text.startswith("▁<PRE>") and details.prompt_ids[0] == 1
    assert "finish_reason" in details.stop_reason


@pytest.mark.slow
def test_stop_frees_the_port_and_then_the_endpoint_is_unreachable(server):
    """Last in this file: stops the shared server (the fixture's own stop() is then a no-op)."""
    url, port = server.url, server.port
    server.stop()
    server.stop()  # idempotent
    assert not server.is_running and not serving.port_in_use(port)
    with pytest.raises(EndpointUnreachableError):
        serving.check_endpoint(url, timeout=2)


def test_chat_template_of_a_cached_hub_repo(monkeypatch, tmp_path):
    """A base repo from the cache gets Code Llama Instruct's template for the chat route; an Instruct repo
    that brings its own keeps it (a base Code Llama without one answered chat requests with 400 Bad Request)."""
    import json

    import huggingface_hub

    from codellama_course.prompts import HUB_CHAT_TEMPLATE

    for repo_id, own in (("codellama/CodeLlama-7b-hf", None), ("codellama/CodeLlama-7b-Instruct-hf", "{{ x }}")):
        snapshot = tmp_path / ("models--" + repo_id.replace("/", "--")) / "snapshots" / ("0" * 40)
        snapshot.mkdir(parents=True)
        (snapshot.parent.parent / "refs").mkdir()
        (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
        (snapshot / "config.json").write_text("{}")
        (snapshot / "tokenizer_config.json").write_text(json.dumps({"chat_template": own}))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert LocalServer("codellama/CodeLlama-7b-hf").chat_template == HUB_CHAT_TEMPLATE
    assert LocalServer("codellama/CodeLlama-7b-Instruct-hf").chat_template is None
