"""Instruct chat prompts: exact to Meta's reference ids, and to the Hub's chat template text."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from _meta_reference import (
    GOLDEN_CHAT,
    GOLDEN_CHAT_MESSAGES,
    VOCAB_7B,
    VOCAB_34B,
    VOCAB_70B,
    MetaReference,
    load_tokenizer,
    make_folder,
    random_dialogs,
    require,
)
from codellama_course.prompts import (
    HUB_CHAT_TEMPLATE,
    HUB_CHAT_TEMPLATE_70B,
    SPECIAL_TAGS,
    chat_ids,
    chat_prompt,
    chat_stop_ids,
    chat_style,
)
from codellama_course.lessons import compare_chat

N_RANDOM = 300


@pytest.fixture(scope="module")
def ref70() -> MetaReference:
    return MetaReference(require(VOCAB_70B))


@pytest.fixture(scope="module")
def folder7(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("chat7") / "CodeLlama-7b-Instruct-hf", require(VOCAB_7B),
                       chat_template=HUB_CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def hf7(folder7):
    return load_tokenizer(folder7)


@pytest.fixture(scope="module")
def hf70(tmp_path_factory):
    folder = make_folder(tmp_path_factory.mktemp("chat70") / "CodeLlama-70b-Instruct-hf", require(VOCAB_70B),
                         chat_template=HUB_CHAT_TEMPLATE_70B)
    return load_tokenizer(folder)


@pytest.fixture(scope="module")
def dialogs():
    return random_dialogs(N_RANDOM, seed=7)


@pytest.fixture(scope="module")
def dialogs70():
    return random_dialogs(N_RANDOM, seed=70, destinations=True)


# ------------------------------------------------------------------------------------------------
# golden
# ------------------------------------------------------------------------------------------------
def test_golden_chat_ids(ref7, hf7):
    assert chat_ids(require(VOCAB_7B), GOLDEN_CHAT_MESSAGES) == GOLDEN_CHAT
    assert chat_ids(ref7.sp, GOLDEN_CHAT_MESSAGES) == GOLDEN_CHAT
    assert chat_ids(hf7, GOLDEN_CHAT_MESSAGES) == GOLDEN_CHAT
    assert ref7.chat_llama2(GOLDEN_CHAT_MESSAGES) == GOLDEN_CHAT
    assert chat_prompt(GOLDEN_CHAT_MESSAGES) == "<s>[INST] How are you doing? [/INST]"


def test_golden_chat_ids_fallback(tmp_path, hf7):
    hf7.save_pretrained(str(tmp_path / "json"))
    tok = load_tokenizer(tmp_path / "json")
    with pytest.warns(UserWarning, match="no tokenizer.model"):
        assert chat_ids(tok, GOLDEN_CHAT_MESSAGES) == GOLDEN_CHAT


def test_system_prompt_layout():
    msgs = [{"role": "system", "content": "Answer in JavaScript."}, {"role": "user", "content": "Sort a list."}]
    assert chat_prompt(msgs) == "<s>[INST] <<SYS>>\nAnswer in JavaScript.\n<</SYS>>\n\nSort a list. [/INST]"


def test_multi_turn_layout():
    msgs = [{"role": "user", "content": " Hi "}, {"role": "assistant", "content": "\nHello!\n"},
            {"role": "user", "content": "Bye"}]
    assert chat_prompt(msgs) == "<s>[INST] Hi [/INST] Hello! </s><s>[INST] Bye [/INST]"


def test_70b_text_layout():
    msgs = [{"role": "user", "content": "Hi"}]
    assert chat_prompt(msgs, style="70b") == (
        "<s> Source: system<step> Source: user\n\n Hi<step> Source: assistant\nDestination: user\n\n "
    )
    # whitespace-only content still gets a body (Meta tests the raw content), a destination a header line
    msgs = [{"role": "system", "content": "  "}, {"role": "user", "content": "Hi", "destination": " ipython "}]
    assert chat_prompt(msgs, style="70b") == (
        "<s> Source: system\n\n <step> Source: user\nDestination: ipython\n\n Hi<step>"
        " Source: assistant\nDestination: user\n\n "
    )


def test_70b_layout(ref70):
    msgs = [{"role": "user", "content": "Hi"}]
    ids = chat_ids(ref70.sp, msgs)
    assert ids == ref70.chat_70b(msgs)
    assert ids[0] == 1 and ids.count(32015) == 2
    assert ids[-3:] == ref70.text("\n\n ")[-3:]


# ------------------------------------------------------------------------------------------------
# random dialogs vs the independent re-implementation
# ------------------------------------------------------------------------------------------------
def test_random_dialogs_llama2(ref7, hf7, dialogs):
    assert len(dialogs) >= 200
    for msgs in dialogs:
        want = ref7.chat_llama2(msgs)
        assert chat_ids(ref7.sp, msgs) == want, msgs
        assert chat_ids(hf7, msgs) == want, msgs


def test_random_dialogs_70b(ref70, hf70, dialogs70):
    assert len(dialogs70) >= 200
    for msgs in dialogs70:
        want = ref70.chat_70b(msgs)
        assert chat_ids(ref70.sp, msgs) == want, msgs  # style inferred from <step>
        assert chat_ids(hf70, msgs, style="70b") == want, msgs


def test_random_dialogs_70b_without_destinations(ref70, dialogs):
    for msgs in dialogs:
        assert chat_ids(ref70.sp, msgs) == ref70.chat_70b(msgs), msgs


def test_chat_prompt_equals_hub_template(hf7, dialogs):
    """Our text equals the Hub chat_template rendered by transformers, on every valid dialog."""
    for msgs in dialogs:
        hub = hf7.apply_chat_template(msgs, chat_template=HUB_CHAT_TEMPLATE, tokenize=False)
        assert chat_prompt(msgs) == hub, msgs


def test_chat_prompt_text_encodes_to_chat_ids(ref7, dialogs):
    """Splitting the text at <s>/</s> and encoding each segment gives exactly the ids (for
    messages that do not contain "<s>"/"</s>" as text themselves)."""
    clean = [m for m in dialogs if not any("<s>" in x["content"] or "</s>" in x["content"] for x in m)]
    assert len(clean) >= 50
    for msgs in clean:
        text, ids = chat_prompt(msgs), []
        for part in re.split(r"(<s>|</s>)", text):
            if part == "<s>":
                ids.append(1)
            elif part == "</s>":
                ids.append(2)
            elif part:
                ids += ref7.text(part)
        assert ids == chat_ids(ref7.sp, msgs), msgs


# ------------------------------------------------------------------------------------------------
# style inference and stop ids
# ------------------------------------------------------------------------------------------------
def test_style_inference(hf7, hf70, tmp_path):
    assert chat_style(require(VOCAB_7B)) == "llama2"
    assert chat_style(require(VOCAB_70B)) == "70b"
    assert chat_style(require(VOCAB_34B)) == "llama2"  # CodeLlama-34b-Instruct: plain vocab, llama2 format
    assert chat_style(hf7) == "llama2" and chat_style(hf70) == "70b"
    base = load_tokenizer(make_folder(tmp_path / "CodeLlama-7b-hf", require(VOCAB_7B)))
    python = load_tokenizer(make_folder(tmp_path / "CodeLlama-13b-Python-hf", require(VOCAB_34B), fim=False))
    for tok in (base, python):
        with pytest.raises(ValueError, match="not an Instruct model"):
            chat_ids(tok, GOLDEN_CHAT_MESSAGES)
    assert chat_ids(base, GOLDEN_CHAT_MESSAGES, style="llama2") == GOLDEN_CHAT  # explicit override


def test_stop_ids(ref7, ref70):
    assert chat_stop_ids(ref7.sp) == [2]
    assert chat_stop_ids(ref70.sp) == [2, 32015] == [ref70.eos, ref70.step]
    assert chat_stop_ids(ref70.sp, "llama2") == [2]
    with pytest.raises(ValueError, match="<step>"):
        chat_stop_ids(ref7.sp, "70b")


def test_llama2_style_on_70b_vocab_is_allowed(ref70, ref7):
    # overriding the style works on any vocabulary (the 7B and 70B vocabularies agree below 32015)
    assert chat_ids(ref70.sp, GOLDEN_CHAT_MESSAGES, style="llama2") == GOLDEN_CHAT


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------
U = {"role": "user", "content": "u"}
A = {"role": "assistant", "content": "a"}
S = {"role": "system", "content": "s"}


@pytest.mark.parametrize("style", ["llama2", "70b"])
@pytest.mark.parametrize(
    "msgs, match",
    [
        ([U, U], "alternating"),
        ([A, U], "alternating"),
        ([U, S, U], "alternating"),
        ([S, S, U], "alternating"),
        ([S, A, U], "alternating"),
        ([U, A], "last message must be from 'user'"),
        ([S, U, A], "last message must be from 'user'"),
        ([{"role": "tool", "content": "x"}], "alternating"),
        ([], "empty"),
    ],
)
def test_role_errors(msgs, match, style):
    with pytest.raises(ValueError, match=match):
        chat_prompt(msgs, style=style)


@pytest.mark.parametrize("style", ["llama2", "70b"])
def test_role_errors_ids(ref70, style):
    for msgs, match in [([U, U], "alternating"), ([S, A, U], "alternating"), ([U, A], "last message"), ([], "empty")]:
        with pytest.raises(ValueError, match=match):
            chat_ids(ref70.sp, msgs, style=style)


def test_system_alone_is_an_error():
    with pytest.raises(ValueError, match="followed by a user message"):
        chat_prompt([S])
    with pytest.raises(ValueError, match="last message must be from 'user'"):
        chat_prompt([S], style="70b")


@pytest.mark.parametrize("tag", SPECIAL_TAGS)
@pytest.mark.parametrize("where", [0, 1, 2, 3])
def test_special_tags_are_refused(tag, where):
    msgs = [dict(S), dict(U), dict(A), dict(U)]
    msgs[where]["content"] = f"look: {tag} here"
    for style in ("llama2", "70b"):
        with pytest.raises(ValueError, match="special tags"):
            chat_prompt(msgs, style=style)


@pytest.mark.parametrize("tag", SPECIAL_TAGS)
def test_special_tags_are_refused_ids(ref7, ref70, tag):
    msgs = [dict(S), dict(U)]
    msgs[0]["content"] = f"{tag}"
    with pytest.raises(ValueError, match=re.escape(tag)):
        chat_ids(ref7.sp, msgs)
    with pytest.raises(ValueError, match=re.escape(tag)):
        chat_ids(ref70.sp, msgs)


def test_near_tags_are_fine(ref7):
    msgs = [{"role": "user", "content": "[INS] <<SYS> <step > [inst] </SYS>>"}]
    assert chat_ids(ref7.sp, msgs) == ref7.chat_llama2(msgs)


def test_unknown_style_ids(ref7):
    with pytest.raises(ValueError, match="unknown chat style"):
        chat_ids(ref7.sp, [U], style="llama3")  # type: ignore[arg-type]


def test_unknown_style_and_bad_messages():
    with pytest.raises(ValueError, match="unknown chat style"):
        chat_prompt([U], style="chatml")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        chat_prompt("hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        chat_prompt([{"role": "user"}])
    with pytest.raises(TypeError):
        chat_prompt([{"role": "user", "content": None}])


def test_70b_style_needs_step_piece(ref7):
    with pytest.raises(ValueError, match="<step>"):
        chat_ids(ref7.sp, [U], style="70b")


# ------------------------------------------------------------------------------------------------
# transformers 5: apply_chat_template vs Meta (measured on the reference vocabularies)
# ------------------------------------------------------------------------------------------------
def test_apply_chat_template_differs_after_bos(folder7):
    tok = load_tokenizer(folder7)  # fresh: no <FILL_ME> call has changed its state
    diff = compare_chat(tok, GOLDEN_CHAT_MESSAGES)
    assert diff.ours == GOLDEN_CHAT
    assert diff.theirs == [1, 29961] + GOLDEN_CHAT[2:]  # "[" instead of "▁[" after <s>
    assert diff.first_difference == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = tok.apply_chat_template(GOLDEN_CHAT_MESSAGES, return_dict=True)
    assert set(out) >= {"input_ids", "attention_mask"}


def test_apply_chat_template_70b_hub_template_is_not_meta(hf70):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
    diff = compare_chat(hf70, msgs)
    assert not diff.equal
    assert hf70.apply_chat_template(msgs, tokenize=False) == (
        "<s>Source: system\n\n S <step> Source: user\n\n Hi <step> Source: assistant\nDestination: user\n\n "
    )
    assert chat_prompt(msgs, style="70b") == (
        "<s> Source: system\n\n S<step> Source: user\n\n Hi<step> Source: assistant\nDestination: user\n\n "
    )
