"""Test helpers for the prompt tests: an independent re-implementation of Meta's reference prompt
logic (meta-llama/codellama, llama/tokenizer.py + llama/generation.py) using sentencepiece
directly, the reference vocabularies, and seeded random generators of code splits and dialogs.

Deliberately shares no code with ``codellama_course.prompts``: ids here are built the way Meta's
reference builds them (``piece_to_id(...) or None``, ``encode("☺" + s)[2:]``, one
``sp.encode`` call per text segment), so agreement is a real check.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import shutil
from pathlib import Path

import pytest

# ../shared/reference/codellama-tokenizers next to the project; CODELLAMA_COURSE_REFERENCE_DIR points elsewhere
# (or, set to a folder that does not exist, shows what runs on a clone without it).
REF_DIR = Path(os.environ.get("CODELLAMA_COURSE_REFERENCE_DIR")
               or Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "codellama-tokenizers")
NANO_DIR = Path(__file__).resolve().parents[1] / "codellama_course" / "nano_model"

VOCAB_7B = REF_DIR / "codellama-7b-13b.model"
VOCAB_70B = REF_DIR / "codellama-70b-instruct.model"
VOCAB_34B = REF_DIR / "codellama-34b-python.model"

# Published reference ids (../shared/reference/codellama-tokenizers/README.md).
GOLDEN_PREFIX = 'def remove_non_ascii(s: str) -> str:\n    """ '
GOLDEN_SUFFIX = "\n    return result\n"
GOLDEN_INFILL = [1, 32007, 822, 3349, 29918, 5464, 29918, 294, 18869, 29898, 29879, 29901, 851, 29897, 1599,
                 851, 29901, 13, 1678, 9995, 29871, 32008, 13, 1678, 736, 1121, 13, 32009]
GOLDEN_CHAT_MESSAGES = [{"role": "user", "content": "How are you doing?"}]
GOLDEN_CHAT = [1, 518, 25580, 29962, 1128, 526, 366, 2599, 29973, 518, 29914, 25580, 29962]


def require(path: Path) -> Path:
    """Skip the test cleanly when a reference file (outside the project) is absent."""
    if not path.is_file():
        pytest.skip(f"reference vocabulary not available: {path} (this test needs the whole vocabulary; the "
                    "token ids themselves are checked on every clone by tests/test_prompts_golden.py)")
    return path


# ------------------------------------------------------------------------------------------------
# Meta's logic, re-implemented
# ------------------------------------------------------------------------------------------------
class MetaReference:
    """Meta's ``Tokenizer`` + prompt functions, on a SentencePiece model file."""

    def __init__(self, model_file: Path):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.bos, self.eos = self.sp.bos_id(), self.sp.eos_id()

        def lookup(piece: str):
            return self.sp.piece_to_id(piece) or None  # unknown pieces map to 0 -> None

        self.pre, self.mid, self.suf, self.eot = (lookup(p) for p in ("▁<PRE>", "▁<MID>", "▁<SUF>", "▁<EOT>"))
        self.step = lookup("<step>")

    def text(self, s: str) -> list[int]:
        assert type(s) is str
        return self.sp.encode(s)

    def text_no_space(self, s: str) -> list[int]:
        return self.sp.encode("☺" + s)[2:]

    def decode_no_space(self, ids: list[int]) -> str:
        return self.sp.decode([self.sp.piece_to_id("☺")] + ids)[1:]

    # generation.py: infilling_prompt_tokens
    def infill(self, prefix: str, suffix: str, suffix_first: bool = False) -> list[int]:
        assert None not in (self.pre, self.mid, self.suf)
        if suffix_first:
            head = [self.bos, self.pre, self.suf] + self.text_no_space(suffix) + [self.mid]
            return head + self.text(prefix)
        return [self.bos, self.pre] + self.text(prefix) + [self.suf] + self.text_no_space(suffix) + [self.mid]

    # generation.py: chat_completion (step_id is None)
    def chat_llama2(self, dialog: list[dict]) -> list[int]:
        if dialog[0]["role"] == "system":
            merged = "<<SYS>>\n" + dialog[0]["content"] + "\n<</SYS>>\n\n" + dialog[1]["content"]
            dialog = [{"role": dialog[1]["role"], "content": merged}] + dialog[2:]
        assert [m["role"] for m in dialog] == ["user", "assistant"] * (len(dialog) // 2) + ["user"] * (len(dialog) % 2)
        assert dialog[-1]["role"] == "user"
        out: list[int] = []
        for k in range(0, len(dialog) - 1, 2):
            q, a = dialog[k]["content"].strip(), dialog[k + 1]["content"].strip()
            out += [self.bos] + self.text(f"[INST] {q} [/INST] {a} ") + [self.eos]
        return out + [self.bos] + self.text(f"[INST] {dialog[-1]['content'].strip()} [/INST]")

    # generation.py: _chat_completion_turns + dialog_prompt_tokens
    def chat_70b(self, dialog: list[dict]) -> list[int]:
        assert self.step is not None
        if dialog[0]["role"] != "system":
            dialog = [{"role": "system", "content": ""}] + dialog
        assert all(m["role"] == "user" for m in dialog[1::2])
        assert all(m["role"] == "assistant" for m in dialog[2::2])
        assert dialog[-1]["role"] == "user"
        out = [self.bos]
        for m in dialog:
            lines = ["Source: " + m["role"].strip()]
            if m.get("destination") is not None:
                lines.append("Destination: " + m["destination"].strip())
            out += self.text(" " + "\n".join(lines))
            if m["content"]:
                out += self.text("\n\n " + m["content"].strip())
            out.append(self.step)
        out += self.text(" " + "\n".join(["Source: assistant", "Destination: user"]))
        return out + self.text("\n\n ")


# ------------------------------------------------------------------------------------------------
# transformers tokenizer folders (built in tmp dirs from the reference .model files)
# ------------------------------------------------------------------------------------------------
def tokenizer_config(fim: bool = True) -> dict:
    """A tokenizer_config.json shaped like the Hub's CodeLlama repos."""
    cfg = {
        "tokenizer_class": "CodeLlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "clean_up_tokenization_spaces": False,
        "legacy": None,
        "use_default_system_prompt": False,
        "fill_token": "<FILL_ME>",
    }
    if fim:
        cfg.update(prefix_token="▁<PRE>", middle_token="▁<MID>", suffix_token="▁<SUF>", eot_token="▁<EOT>")
    else:
        cfg.update(prefix_token=None, middle_token=None, suffix_token=None, eot_token=None)
    return cfg


def make_folder(dest: Path, model_file: Path, *, fim: bool = True, chat_template: str | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_file, dest / "tokenizer.model")  # a tmp dir, never the project
    cfg = tokenizer_config(fim)
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    (dest / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    return dest


def load_tokenizer(folder: Path, cls: str = "AutoTokenizer"):
    import transformers

    return getattr(transformers, cls).from_pretrained(str(folder), local_files_only=True)


# ------------------------------------------------------------------------------------------------
# Random cases
# ------------------------------------------------------------------------------------------------
_EXTRA_CODE = [
    "function add(a, b) {\r\n    return a + b;\r\n}\r\n",
    "int main(void)\n{\n\tprintf(\"héllo wörld\\n\");\n\treturn 0;\n}\n",
    "  x  =  1   # two  spaces\n      y = x*2\n",
    "def f():\n    '''Docstring with unicode: λ → ∑, 日本語, emoji 😀.'''\n    pass\n",
    "    indented_first_line()\n\n\n        deeper()\n",
    "SELECT *\n  FROM t\n WHERE a = 'b'  ;\n",
    "fn main() {\n    let s = \"naïve café\";\n    println!(\"{}\", s);\n}\n",
    "<div class=\"x\">  <span>text</span>  </div>\n",
    "if (a &lt; b)   {\t\tfoo();   }\n",
    "# ☺ smiley in code\nprint('☺')\n",
]


def code_corpus() -> str:
    """Real code with indentation: a few stdlib modules plus hand-made snippets."""
    import difflib
    import json.decoder
    import textwrap

    parts = [inspect.getsource(m) for m in (textwrap, json.decoder)]
    parts.append(inspect.getsource(difflib.SequenceMatcher.find_longest_match))
    return "".join(parts) + "".join(_EXTRA_CODE)


def random_splits(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (prefix, suffix) pairs from random windows of real code, with edge cases mixed in."""
    rng = random.Random(seed)
    src = code_corpus()
    cases: list[tuple[str, str]] = [
        ("", ""), ("", "x"), ("x", ""), (" ", " "), ("  ", "\n"), ("\r\n", "\r\n"),
        ("def f():\n    ", "\n    return 1\n"), ("    ", "    "), ("日本", "語"), ("a\tb", "\tc"),
    ]
    while len(cases) < n:
        i = rng.randrange(len(src))
        window = src[i:i + rng.randrange(0, 400)]
        k = rng.randrange(len(window) + 1)
        prefix, suffix = window[:k], window[k:]
        r = rng.random()
        if r < 0.10:
            prefix = ""
        elif r < 0.20:
            suffix = ""
        elif r < 0.30:
            prefix, suffix = prefix.replace("\n", "\r\n"), suffix.replace("\n", "\r\n")
        elif r < 0.40:
            prefix, suffix = " " * rng.randrange(1, 9) + prefix, " " * rng.randrange(1, 9) + suffix
        elif r < 0.50:
            prefix, suffix = prefix + rng.choice(["é", "→", "😀", "日本語", "\u00a0", "▁"]), rng.choice(["ü", "∑ ", "  "]) + suffix
        elif r < 0.55:
            prefix, suffix = prefix.replace(" ", "  "), suffix.replace(" ", "   ")
        cases.append((prefix, suffix))
    return cases


_WORDS = ["Write", "a", "function", "that", "sorts", "a list", "in", "Python", "JavaScript", "please", "?", "!",
          "`x = 1`", "def f(x):\n    return x", "héllo", "日本語", "😀", "[INS", "SYS", "step", "<s>", "</s>"]
_ODD = ["", " ", "  ", "\n", "\n\n", "\t", " \n ", "\r\n", "   \t"]


def random_text(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.07:
        return ""
    if r < 0.12:
        return rng.choice(_ODD[1:])  # whitespace only
    words = [rng.choice(_WORDS) for _ in range(rng.randrange(1, 12))]
    body = ""
    for w in words:
        body += w + rng.choice([" ", " ", " ", "  ", "\n", "\n    ", ""])
    return rng.choice(_ODD) + body + rng.choice(_ODD)


def random_dialogs(n: int, seed: int, *, destinations: bool = False) -> list[list[dict]]:
    """Valid dialogs: optional system, 1-3 user turns with assistant answers in between."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        msgs: list[dict] = []
        if rng.random() < 0.5:
            msgs.append({"role": "system", "content": random_text(rng)})
        turns = rng.randrange(1, 4)
        for t in range(turns):
            msgs.append({"role": "user", "content": random_text(rng)})
            if t < turns - 1:
                msgs.append({"role": "assistant", "content": random_text(rng)})
        if destinations:
            for m in msgs:
                if rng.random() < 0.15:
                    m["destination"] = rng.choice(["user", " ipython ", "all"])
        out.append(msgs)
    return out
