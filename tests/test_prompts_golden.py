"""Token-exact prompts on every clone: the package's own encoders against committed golden ids.

tests/data/golden_tokens.json (written by scripts/make_golden_tokens.py from the reference Code Llama
vocabularies) holds, for the golden cases and a few hundred random FIM and chat cases, the ids SentencePiece
gives each text segment Meta's reference encodes, the ids of the special pieces, and the final prompt ids
Meta's logic builds. Here the tokenizer is a :class:`RecordedVocabulary`: a ``SentencePieceProcessor`` that
answers from those recordings and refuses any text it has no recording for. So ``infill_ids``/``chat_ids``
run their real code path, and must assemble the recorded segments (BOS, sentinel, spaces, ``[INST]`` layout,
70B ``Source:`` turns) into exactly the final ids. Where the vocabularies themselves are present, the last
test checks that the committed data still matches them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sentencepiece as spm

from _meta_reference import GOLDEN_CHAT, GOLDEN_CHAT_MESSAGES, GOLDEN_INFILL, GOLDEN_PREFIX, GOLDEN_SUFFIX, REF_DIR
from codellama_course.prompts import chat_ids, chat_stop_ids, chat_style, decode_infill, infill_ids, infill_stop_ids

ROOT = Path(__file__).resolve().parents[1]
DATA = json.loads((ROOT / "tests" / "data" / "golden_tokens.json").read_text(encoding="utf-8"))
CASES = DATA["cases"]


class UnrecordedText(AssertionError):
    """The package encoded a text segment that Meta's reference never encodes for these cases."""


class RecordedVocabulary(spm.SentencePieceProcessor):
    """A SentencePieceProcessor that answers from the golden recordings of one reference vocabulary."""

    def __init__(self, name: str, decodings: dict[tuple[int, ...], str] | None = None):
        super().__init__()
        vocab = DATA["vocabularies"][name]
        self._size, self._bos, self._eos, self._unk = vocab["size"], vocab["bos"], vocab["eos"], vocab["unk"]
        self._ids = {piece: i for piece, i in vocab["pieces"].items() if i is not None}
        self._pieces = {i: piece for piece, i in self._ids.items()} | {self._unk: "<unk>"}
        self._encodings = DATA["encodings"].get(name, {})
        self._decodings = decodings or {}

    def encode(self, text, *args, **kwargs):  # noqa: D401 - SentencePieceProcessor's signature
        assert not args and not kwargs, "the package encodes plain text to ids"
        if text not in self._encodings:
            raise UnrecordedText(f"Meta's reference never encodes {text!r} for these cases")
        return list(self._encodings[text])

    def decode(self, ids, *args, **kwargs):
        key = tuple(int(i) for i in ids)
        if key not in self._decodings:
            raise UnrecordedText(f"no recorded decoding of {list(key)}")
        return self._decodings[key]

    def piece_to_id(self, piece):
        return self._ids.get(piece, self._unk)  # SentencePiece answers unknown pieces with <unk>

    def id_to_piece(self, i):
        if i not in self._pieces:
            raise UnrecordedText(f"the package asked for piece {i}, which the recordings do not cover")
        return self._pieces[i]

    def get_piece_size(self):
        return self._size

    def bos_id(self):
        return self._bos

    def eos_id(self):
        return self._eos

    def unk_id(self):
        return self._unk


@pytest.fixture(scope="module")
def vocab7() -> RecordedVocabulary:
    smile = DATA["vocabularies"]["7b"]["pieces"]["☺"]
    decodings = {}
    for case in CASES["infill"]:
        middle = DATA["encodings"]["7b"]["☺" + case["suffix"]][2:]  # Meta's encode_infilling(suffix)
        decodings[(smile, *middle)] = case["decoded"]
    return RecordedVocabulary("7b", decodings)


@pytest.fixture(scope="module")
def vocab70() -> RecordedVocabulary:
    return RecordedVocabulary("70b")


def test_the_data_holds_the_published_golden_cases():
    first = CASES["infill"][0]
    assert (first["prefix"], first["suffix"], first["psm"]) == (GOLDEN_PREFIX, GOLDEN_SUFFIX, GOLDEN_INFILL)
    assert (CASES["chat_llama2"][0]["messages"], CASES["chat_llama2"][0]["ids"]) == (GOLDEN_CHAT_MESSAGES, GOLDEN_CHAT)
    assert len(CASES["infill"]) >= 200 and len(CASES["chat_llama2"]) >= 100 and len(CASES["chat_70b"]) >= 100


def test_golden_infill(vocab7):
    assert infill_ids(vocab7, GOLDEN_PREFIX, GOLDEN_SUFFIX) == GOLDEN_INFILL


def test_golden_chat(vocab7):
    assert chat_ids(vocab7, GOLDEN_CHAT_MESSAGES) == GOLDEN_CHAT


@pytest.mark.parametrize("layout", ["psm", "spm"])
def test_random_infill_cases(vocab7, layout):
    for case in CASES["infill"]:
        got = infill_ids(vocab7, case["prefix"], case["suffix"], suffix_first=layout == "spm")
        assert got == case[layout], (case["prefix"], case["suffix"])


def test_decode_infill_keeps_the_leading_space(vocab7):
    for case in CASES["infill"]:
        middle = DATA["encodings"]["7b"]["☺" + case["suffix"]][2:]
        assert decode_infill(vocab7, middle) == case["decoded"][1:], case["suffix"]  # Meta: decode([☺] + ids)[1:]


def test_random_llama2_dialogs(vocab7):
    assert chat_style(vocab7) == "llama2"
    for case in CASES["chat_llama2"]:
        assert chat_ids(vocab7, case["messages"]) == case["ids"], case["messages"]


def test_random_70b_dialogs(vocab70):
    assert chat_style(vocab70) == "70b"  # inferred from the <step> piece
    for case in CASES["chat_70b"]:
        assert chat_ids(vocab70, case["messages"]) == case["ids"], case["messages"]


def test_special_ids(vocab7, vocab70):
    assert infill_stop_ids(vocab7) == [32010, 2]
    assert chat_stop_ids(vocab7) == [2]
    assert chat_stop_ids(vocab70) == [2, 32015]


def test_a_vocabulary_without_infilling_pieces_is_refused():
    with pytest.raises(ValueError, match="no infilling pieces"):
        infill_ids(RecordedVocabulary("34b"), "def f(", "):")


def test_the_lookup_refuses_unrecorded_text(vocab7):
    """What makes the tests above able to fail: a segment Meta never encodes cannot be looked up."""
    with pytest.raises(UnrecordedText):
        vocab7.encode(GOLDEN_PREFIX + GOLDEN_SUFFIX)


def test_committed_data_matches_the_reference_vocabularies():
    """Where the reference vocabularies are present: regenerating the data gives the committed file."""
    if not REF_DIR.is_dir():
        pytest.skip(f"reference vocabularies not available: {REF_DIR} (the committed ids are checked above)")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_golden_tokens.py"), "--check",
                          "--reference", str(REF_DIR)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
