"""Generation helpers (codellama_course.generation): complete, infill, chat.

Most tests run on tiny models built here in a second: a SentencePiece tokenizer trained the nano
way (same trainer settings, same FIM pieces) on a few standard-library files, a random tiny Llama,
and a *scripted* Llama whose logits are forced so that it writes exactly the tokens a test wants
(e.g. "three tokens, then ▁<EOT>"). Tests on the shipped nano model skip until it exists.
"""

from __future__ import annotations

import inspect
import random
import string
import textwrap
from pathlib import Path

import pytest
import torch

from codellama_course import generation, prompts
from codellama_course.generation.batched import run
from codellama_course.generation.decoding import codec_for
from codellama_course.generation import (
    PYTHON_STOPS,
    Chat,
    ChatReply,
    Completion,
    GenerationStream,
    Infill,
    chat,
    complete,
    infill,
    resolve_stops,
)

NANO_DIR = Path(__file__).resolve().parents[1] / "codellama_course" / "nano_model"


# ------------------------------------------------------------------------------------------------
# fixtures: tokenizers, a random tiny model, a scripted model
# ------------------------------------------------------------------------------------------------
def _train_tokenizer(folder: Path, *, step: bool = False):
    """A small tokenizer of the Code Llama family (nano's recipe), optionally with 70B's <step>."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2
    from transformers import AutoTokenizer

    from codellama_course import nano_data

    texts = [Path(m.__file__).read_text(encoding="utf-8") for m in (textwrap, string, random)]
    model_file = nano_data.train_tokenizer(texts, folder, vocab_size=600)
    if step:
        proto = model_pb2.ModelProto()
        proto.ParseFromString(model_file.read_bytes())
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = "<step>", -1e9, model_pb2.ModelProto.SentencePiece.USER_DEFINED
        model_file.write_bytes(proto.SerializeToString())
    nano_data.save_hf_tokenizer(model_file, folder, model_max_length=1024)
    return AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return _train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture(scope="module")
def tok70(tmp_path_factory):
    return _train_tokenizer(tmp_path_factory.mktemp("tok70") / "tokenizer", step=True)


def _config(vocab_size: int, **kw):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                       bos_token_id=1, eos_token_id=2, **kw)


@pytest.fixture(scope="module")
def model(tok):
    """A random tiny Llama; a large init spreads its logits so that greedy has no near-ties."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    m = LlamaForCausalLM(_config(len(tok), initializer_range=0.5)).eval()
    m.generation_config.eos_token_id = 2
    m.generation_config.pad_token_id = 2
    return m


def _scripted_class():
    from transformers import LlamaForCausalLM

    class ScriptedLM(LlamaForCausalLM):
        """Writes ``scripts[row]`` token by token (then repeats its last token): the logits of
        every other token are forced far down. Rows are batch rows after generate's expansion."""

        scripts: list[list[int]] = [[3]]

        def forward(self, input_ids=None, attention_mask=None, **kwargs):
            out = super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            if input_ids.shape[1] > 1:  # the prefill call: the prompt
                self._step = 0
            else:  # one new token per call after that
                self._step += 1
            step = self._step
            logits = torch.full_like(out.logits, -1e4)
            for row in range(logits.shape[0]):
                script = self.scripts[row % len(self.scripts)]
                logits[row, -1, script[min(step, len(script) - 1)]] = 1e4
            out.logits = logits
            return out

    return ScriptedLM


def scripted(tokenizer, scripts: list[list[int]]):
    torch.manual_seed(0)
    m = _scripted_class()(_config(len(tokenizer))).eval()
    m.scripts = scripts
    m.generation_config.eos_token_id = tokenizer.eos_token_id
    m.generation_config.pad_token_id = tokenizer.eos_token_id
    return m


def sp_ids(tokenizer, text: str) -> list[int]:
    """Ids that decode to ``text`` as a continuation (no implicit leading space added)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(Path(tokenizer.name_or_path) / "tokenizer.model"))
    return sp.encode("☺" + text)[len(sp.encode("☺")):]


def piece(tokenizer, p: str) -> int:
    i = tokenizer.convert_tokens_to_ids(p)
    assert tokenizer.convert_ids_to_tokens(i) == p
    return i


# ------------------------------------------------------------------------------------------------
# complete: equal to raw generate, batching, seeds
# ------------------------------------------------------------------------------------------------
def test_greedy_complete_equals_raw_generate(model, tok):
    c = complete(model, tok, "def fibonacci(n):", max_new_tokens=12)
    assert isinstance(c, Completion)
    ids = torch.tensor([c.prompt_ids])
    raw = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                         do_sample=False, pad_token_id=2)
    assert c.token_ids == raw[0, ids.shape[1]:].tolist()
    assert c.finish_reason in {"eos", "length"}
    if c.finish_reason == "length":
        assert len(c.token_ids) == 12


def test_prompt_ids_are_metas_encoding(model, tok):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(Path(tok.name_or_path) / "tokenizer.model"))
    prompt = "  x = 1\n    return x"
    c = complete(model, tok, prompt, max_new_tokens=1)
    assert c.prompt_ids == [1] + sp.encode(prompt)  # Meta: encode(prompt, bos=True, eos=False)


def test_batched_samples_shape_one_call_and_seed(model, tok, monkeypatch):
    calls = []
    real = model.generate

    def counting(*args, **kwargs):
        rows = kwargs["input_ids"].shape[0] * (kwargs.get("num_return_sequences") or 1)
        calls.append(rows)
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counting)
    prompts_ = ["def add(a, b):", "import os\n\n\ndef main("]
    out = complete(model, tok, prompts_, num_samples=4, temperature=1.0, seed=123, max_new_tokens=6)
    assert len(calls) == 1, "n samples of every prompt must come from ONE generate call"
    assert calls == [2 * 4]
    assert len(out) == 2 and all(len(row) == 4 for row in out)
    for p, row in zip(prompts_, out):
        for c in row:
            assert c.prompt == p and 1 <= len(c.token_ids) <= 6
    again = complete(model, tok, prompts_, num_samples=4, temperature=1.0, seed=123, max_new_tokens=6)
    assert [[c.token_ids for c in r] for r in again] == [[c.token_ids for c in r] for r in out]
    other = complete(model, tok, prompts_, num_samples=4, temperature=1.0, seed=124, max_new_tokens=6)
    assert [[c.token_ids for c in r] for r in other] != [[c.token_ids for c in r] for r in out]
    # samples differ from each other (temperature 1 on a random model)
    assert len({tuple(c.token_ids) for c in out[0]}) > 1


def test_single_prompt_shapes(model, tok):
    one = complete(model, tok, "x = ", max_new_tokens=3)
    assert isinstance(one, Completion)
    four = complete(model, tok, "x = ", max_new_tokens=3, num_samples=4, temperature=0.7, seed=0)
    assert isinstance(four, list) and len(four) == 4 and all(isinstance(c, Completion) for c in four)
    listed = complete(model, tok, ["x = "], max_new_tokens=3)
    assert isinstance(listed, list) and len(listed) == 1 and isinstance(listed[0], Completion)


def test_left_padded_batch_equals_one_by_one(model, tok):
    prompts_ = ["def f(x):\n    return", "class A:\n    def __init__(self):\n        self.x = ", "import"]
    batch = complete(model, tok, prompts_, max_new_tokens=8)
    for p, b in zip(prompts_, batch):
        assert complete(model, tok, p, max_new_tokens=8).token_ids == b.token_ids


def test_seed_leaves_global_rng_alone(model, tok):
    state = torch.get_rng_state()
    complete(model, tok, "def", temperature=0.8, seed=7, max_new_tokens=3)
    assert torch.equal(state, torch.get_rng_state())


def test_knob_errors(model, tok):
    with pytest.raises(ValueError, match="identical"):
        complete(model, tok, "def", num_samples=3)  # greedy x 3
    with pytest.raises(ValueError, match="temperature"):
        complete(model, tok, "def", temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        complete(model, tok, "def", temperature=0.5, top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        complete(model, tok, "def", max_new_tokens=0)
    with pytest.raises(ValueError, match="one prompt"):
        complete(model, tok, ["a", "b"], stream=True)


def test_no_hard_coded_cuda():
    src = inspect.getsource(generation)
    assert '"cuda")' not in src and ".cuda()" not in src


# ------------------------------------------------------------------------------------------------
# stop sequences
# ------------------------------------------------------------------------------------------------
def test_resolve_stops():
    assert resolve_stops(None) == []
    assert resolve_stops("python") == list(PYTHON_STOPS) == ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
    assert resolve_stops("\n\n") == ["\n\n"]
    with pytest.raises(ValueError):
        resolve_stops(["ok", ""])


BODY = "    return a + b\n"
AFTER = "def sub(a, b):\n    return a - b\n"


def test_python_stops_cut_exactly_and_stop_generation(tok):
    script = sp_ids(tok, BODY + AFTER)
    m = scripted(tok, [script])
    c = complete(m, tok, "def add(a, b):\n", stop="python", max_new_tokens=len(script) + 5)
    assert c.text == BODY.rstrip("\n")  # cut right before "\ndef"
    assert c.finish_reason == "stop" and c.stop_sequence == "\ndef"
    # generation itself stopped at the token that completed "\ndef", not at max_new_tokens
    decoded = codec_for(tok).decode(c.token_ids)
    assert "\ndef" in decoded and "\ndef" not in codec_for(tok).decode(c.token_ids[:-1])
    assert len(c.token_ids) < len(script)


def test_stop_in_prompt_is_ignored_and_earliest_stop_wins(tok):
    text = "x = 1\n# note\nif x:\n    pass\n"
    m = scripted(tok, [sp_ids(tok, text)])
    c = complete(m, tok, "def f():\n    pass\ndef g():\n", stop=["\nif", "\n#"], max_new_tokens=40)
    assert c.text == "x = 1" and c.stop_sequence == "\n#"


def test_stop_spanning_many_tokens_and_streaming(tok):
    text = "alpha beta gamma delta END epsilon"
    script = sp_ids(tok, text)
    m = scripted(tok, [script])
    full = complete(m, tok, "words:", stop=[" delta END"], max_new_tokens=40)
    assert full.text == "alpha beta gamma" and full.finish_reason == "stop"
    s = complete(m, tok, "words:", stop=[" delta END"], max_new_tokens=40, stream=True)
    assert isinstance(s, GenerationStream)
    chunks = list(s)
    assert "".join(chunks) == full.text == s.result.text
    assert s.result.token_ids == full.token_ids


def test_streaming_without_stops_equals_batch(model, tok):
    c = complete(model, tok, "def main():", max_new_tokens=15)
    s = complete(model, tok, "def main():", max_new_tokens=15, stream=True)
    assert "".join(s) == c.text
    assert s.result.token_ids == c.token_ids


def test_per_row_stops_in_a_batch(tok):
    long = sp_ids(tok, "a = 1\nb = 2\nc = 3\n")
    short = sp_ids(tok, "z = 0\nprint(z)\n")
    m = scripted(tok, [long, short])
    a, b = complete(m, tok, ["# one\n", "# two\n"], stop="python", max_new_tokens=len(long) + 2)
    assert b.text == "z = 0" and b.finish_reason == "stop"
    assert a.finish_reason == "length" and a.text.startswith("a = 1\nb = 2\nc = 3")


def test_first_leading_space_is_kept(tok):
    word = piece(tok, "▁return") if "▁return" in tok.get_vocab() else sp_ids(tok, " x")[0]
    m = scripted(tok, [[word, tok.eos_token_id]])
    c = complete(m, tok, "def f(x):\n   ", max_new_tokens=5)
    assert c.text.startswith(" ") and c.finish_reason == "eos"
    # the bug this avoids: tokenizer.decode drops the leading space of the first token
    assert not tok.decode(c.token_ids[:-1]).startswith(" ")


def test_eos_finish_reason(tok):
    m = scripted(tok, [sp_ids(tok, "pass") + [tok.eos_token_id]])
    c = complete(m, tok, "def f():\n    ", max_new_tokens=20)
    assert c.finish_reason == "eos" and c.text == "pass" and c.token_ids[-1] == tok.eos_token_id


# ------------------------------------------------------------------------------------------------
# infill
# ------------------------------------------------------------------------------------------------
PREFIX = 'def remove_non_ascii(s: str) -> str:\n    """ '
SUFFIX = "\n    return result\n"


def test_infill_stops_at_eot_and_keeps_leading_space(tok):
    eot = piece(tok, "▁<EOT>")
    middle = " Remove non-ASCII characters."
    script = sp_ids(tok, middle) + [eot]
    m = scripted(tok, [script + sp_ids(tok, " garbage")])
    r = infill(m, tok, PREFIX, SUFFIX, max_new_tokens=50)
    assert isinstance(r, Infill)
    assert r.stopped_at_eot and r.finish_reason == "eot"
    assert r.token_ids == script  # generation ended at ▁<EOT>, which is the last id
    assert r.middle == middle  # leading space kept
    assert r.text == PREFIX + middle + SUFFIX
    assert r.prompt_ids == prompts.infill_ids(tok, PREFIX, SUFFIX)


def test_infill_eos_and_length(tok):
    m = scripted(tok, [sp_ids(tok, "x") + [tok.eos_token_id]])
    r = infill(m, tok, "a = ", "\n", max_new_tokens=10)
    assert r.finish_reason == "eos" and not r.stopped_at_eot and r.middle == "x"
    m = scripted(tok, [sp_ids(tok, "x")])  # never ends
    r = infill(m, tok, "a = ", "\n", max_new_tokens=4)
    assert r.finish_reason == "length" and not r.stopped_at_eot and len(r.token_ids) == 4


def test_infill_fill_me_marker(tok):
    eot = piece(tok, "▁<EOT>")
    m = scripted(tok, [sp_ids(tok, "result = s") + [eot]])
    r = infill(m, tok, PREFIX + "<FILL_ME>" + SUFFIX, max_new_tokens=20)
    assert (r.prefix, r.suffix) == (PREFIX, SUFFIX)
    assert r.prompt_ids == prompts.infill_ids(tok, PREFIX, SUFFIX)
    assert r.text == PREFIX + "result = s" + SUFFIX
    for bad in ("no marker here", "a<FILL_ME>b<FILL_ME>c"):
        with pytest.raises(ValueError, match="exactly one <FILL_ME>"):
            infill(m, tok, bad)
    with pytest.raises(ValueError, match=r"prompt 1"):
        infill(m, tok, ["a<FILL_ME>b", "nothing"])


def test_infill_batch_each_row_stops_at_its_eot(tok):
    eot = piece(tok, "▁<EOT>")
    s1, s2 = sp_ids(tok, " first"), sp_ids(tok, " the second, longer middle")
    m = scripted(tok, [s1 + [eot], s2 + [eot]])
    rs = infill(m, tok, ["def a():\n    <FILL_ME>\n", "x = [<FILL_ME>]\nprint(x)\n"], max_new_tokens=40)
    assert [r.middle for r in rs] == [" first", " the second, longer middle"]
    assert all(r.stopped_at_eot for r in rs)
    assert rs[0].token_ids == s1 + [eot] and rs[1].token_ids == s2 + [eot]
    # explicit lists of prefixes and suffixes, SPM order
    rs = infill(m, tok, ["def a():\n    ", "x = ["], ["\n", "]\n"], suffix_first=True, max_new_tokens=40)
    assert rs[1].prompt_ids == prompts.infill_ids(tok, "x = [", "]\n", suffix_first=True)
    with pytest.raises(ValueError, match="suffixes"):
        infill(m, tok, ["a", "b"], ["c"])


def test_infill_stream(tok):
    eot = piece(tok, "▁<EOT>")
    m = scripted(tok, [sp_ids(tok, " streamed middle") + [eot]])
    s = infill(m, tok, PREFIX, SUFFIX, stream=True, max_new_tokens=30)
    text = "".join(s)
    assert text == " streamed middle" == s.result.middle and s.result.stopped_at_eot
    assert "<EOT>" not in text


def test_infill_needs_fim_pieces(model):
    ref = Path(__file__).resolve().parents[2] / "shared" / "reference" / "codellama-tokenizers"
    vocab = ref / "codellama-34b-python.model"
    if not vocab.is_file():
        pytest.skip("reference vocabulary not available")
    import sentencepiece as spm

    with pytest.raises(ValueError, match="infill"):
        prompts.infill_ids(spm.SentencePieceProcessor(model_file=str(vocab)), "a", "b")


# ------------------------------------------------------------------------------------------------
# chat
# ------------------------------------------------------------------------------------------------
def test_chat_one_turn_and_stop_ids(tok):
    answer = " Use a list comprehension."
    m = scripted(tok, [sp_ids(tok, answer) + [tok.eos_token_id] + sp_ids(tok, " never")])
    msgs = [{"role": "user", "content": "How do I square numbers?"}]
    r = chat(m, tok, msgs, style="llama2", max_new_tokens=40)
    assert isinstance(r, ChatReply)
    assert r.text == answer.strip() and r.finish_reason == "eos"
    assert r.prompt_ids == prompts.chat_ids(tok, msgs, style="llama2")
    assert r.messages == msgs + [{"role": "assistant", "content": answer.strip()}]
    assert msgs == [{"role": "user", "content": "How do I square numbers?"}]  # caller's list untouched


def test_chat_session_keeps_history(tok):
    m = scripted(tok, [sp_ids(tok, " Sure.") + [tok.eos_token_id]])
    s = Chat(m, tok, system="Answer in JavaScript.", style="llama2", max_new_tokens=20)
    first = s.send("Write hello world.")
    assert first.text == "Sure."
    expected = prompts.chat_ids(tok, s.messages + [{"role": "user", "content": "Again?"}], style="llama2")
    assert s.prompt_ids("Again?") == expected
    second = s.send("Again?")
    assert second.prompt_ids == expected
    assert [x["role"] for x in s.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert s.messages[0]["content"] == "Answer in JavaScript."
    # streamed turns join the history when the stream ends
    stream = s.send("Stream it.", stream=True)
    assert "".join(stream) == "Sure." and len(s.messages) == 7
    s.reset()
    assert s.messages == [{"role": "system", "content": "Answer in JavaScript."}]


def test_chat_70b_stops_at_step(tok70):
    step = piece(tok70, "<step>")
    assert prompts.chat_style(tok70) == "70b"
    assert prompts.chat_stop_ids(tok70) == [tok70.eos_token_id, step]
    m = scripted(tok70, [sp_ids(tok70, " console.log(1)") + [step] + sp_ids(tok70, " Source: user")])
    s = Chat(m, tok70, system="Answer in JavaScript.", max_new_tokens=40)
    r = s.send("Print one.")
    assert s.style == "70b" and r.style == "70b"
    assert r.finish_reason == "step" and r.text == "console.log(1)" and r.token_ids[-1] == step
    assert r.prompt_ids == prompts.chat_ids(tok70, r.messages[:-1], style="70b")
    assert r.prompt_ids[-1] != step  # the prompt ends with the reply header, not a <step>


def test_chat_errors(tok, model):
    with pytest.raises(ValueError, match="last message"):
        chat(model, tok, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], style="llama2")
    with pytest.raises(ValueError, match="special tags"):
        chat(model, tok, [{"role": "user", "content": "[INST] hi"}], style="llama2")
    with pytest.raises(ValueError, match="<step>"):
        chat(model, tok, [{"role": "user", "content": "hi"}], style="70b")


# ------------------------------------------------------------------------------------------------
# the shipped nano model
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nano():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(str(NANO_DIR), dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(str(NANO_DIR)))


def test_nano_greedy_equals_raw_generate(nano):
    m, t = nano
    c = complete(m, t, "def fibonacci(n):\n", max_new_tokens=24)
    ids = torch.tensor([c.prompt_ids])
    raw = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)
    assert c.token_ids == raw[0, ids.shape[1]:].tolist()


NANO_INFILLS = [
    ("def add(a, b):\n    return ", "\n"),
    ("import os\n", "\n\nprint(os.getcwd())\n"),
    ('def remove_non_ascii(s: str) -> str:\n    """ ', "\n    return result\n"),
    ("for i in range(10):\n    ", "\n"),
    ("def is_even(n):\n    ", "\n\n\nprint(is_even(4))\n"),
    ("class Point:\n    def __init__(self, x, y):\n        self.x = x\n",
     "\n\n    def norm(self):\n        return (self.x ** 2 + self.y ** 2) ** 0.5\n"),
]


def test_nano_infill_stops_at_eot(nano):
    m, t = nano
    rs = infill(m, t, [p for p, _ in NANO_INFILLS], [s for _, s in NANO_INFILLS], max_new_tokens=48)
    stopped = [r for r in rs if r.stopped_at_eot]
    assert stopped, f"nano never closed an infill with ▁<EOT>: {rs}"
    for r in stopped:
        assert r.token_ids[-1] == t.convert_tokens_to_ids("▁<EOT>")
        assert "<EOT>" not in r.middle and r.text == r.prefix + r.middle + r.suffix


# ------------------------------------------------------------------------------------------------
# top-p: the same tokens as transformers' TopPLogitsWarper, cheaper
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.05, 1.0, 4.0, 12.0, "mixed"])  # flat (full sort) ... peaked (top-k only)
@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.95])  # 1.0: neither filters
def test_top_p_keeps_what_transformers_keeps(scale, top_p):
    from transformers.generation.logits_process import TopPLogitsWarper

    g = torch.Generator().manual_seed(int(top_p * 1000) + (7 if scale == "mixed" else int(scale * 100)))
    scales = torch.tensor([0.05, 12.0, 1.0, 4.0] * 3)[:, None] if scale == "mixed" else scale
    scores = torch.randn(12, 4096, generator=g) * scales
    ours = generation.TopP(top_p)(None, scores.clone())
    theirs = TopPLogitsWarper(top_p)(None, scores.clone())
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    assert torch.equal(ours[~torch.isinf(ours)], scores[~torch.isinf(ours)])


def test_sampling_uses_top_p_and_no_top_k(model, tok, monkeypatch):
    seen = {}
    real = model.generate

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    complete(model, tok, "def", temperature=0.7, top_p=0.9, max_new_tokens=2, seed=0)
    assert seen["do_sample"] and seen["temperature"] == 0.7 and seen["top_k"] == 0 and seen["top_p"] == 1.0
    assert [type(p).__name__ for p in seen["logits_processor"]] == ["TopP"]
    assert seen["logits_processor"][0].top_p == 0.9
    seen.clear()
    complete(model, tok, "def", max_new_tokens=2)
    assert seen["do_sample"] is False and "logits_processor" not in seen and "temperature" not in seen


def test_shared_prefill_changes_nothing(model, tok):
    """n samples share one prompt pass (KV cache copied n times): same tokens as without it."""
    codec = codec_for(tok)
    rows = [codec.encode_prompt(p) for p in ("def f(x):\n    return", "import os\n")]  # left padding too
    common = dict(codec=codec, max_new_tokens=10, temperature=0.0, top_p=1.0, stops=[], end_ids=[2], seed=None)
    shared = run(model, tok, rows, num_samples=3, extra={}, **common)
    plain = run(model, tok, rows, num_samples=1, extra={}, **common)
    for samples, (one,) in zip(shared, plain):
        assert [s.token_ids for s in samples] == [one.token_ids] * 3
