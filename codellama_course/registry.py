"""The Code Llama family in one table: every released variant plus the course's nano model.

Taught in notebook 01 (``01_code_llama_family.ipynb``); used by ``memory.estimate_memory``,
``loading.load`` and ``preflight.preflight`` so nothing has to be downloaded to reason about a model.

Architecture numbers are those of each Hub repo's ``config.json`` (``codellama/CodeLlama-*-hf``):

==========  ======  ============  ======  =====  ========  =====  ========
size        hidden  intermediate  layers  heads  kv heads  vocab  head_dim
==========  ======  ============  ======  =====  ========  =====  ========
7B          4096    11008         32      32     32        32016  128
13B         5120    13824         40      40     40        32016  128
34B         8192    22016         48      64     8 (GQA)   32000  128
70B         8192    28672         80      64     8 (GQA)   32016  128
==========  ======  ============  ======  =====  ========  =====  ========

Every ``-Python`` variant has the plain Llama 2 vocabulary (32000 pieces, no infilling tokens),
as has all of 34B. The 7B/13B/70B base and Instruct models add 16 pieces (32016), among them
``▁<PRE>``/``▁<SUF>``/``▁<MID>``/``▁<EOT>``.

Context and RoPE: 7B/13B/34B (all flavours) and 70B base were long-context fine-tuned on 16,384-token
sequences with RoPE base θ = 1,000,000 (Llama 2 used 10,000) and extrapolate to about 100k tokens.
CodeLlama-70b-Python and -Instruct are the exception: θ = 10,000 and a 4,096-token context
(confirmed by Meta in meta-llama/codellama#188; the Hub config first said 2048).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Variant", "VariantTable", "UnknownVariantError", "variants", "get_variant", "find_variant", "as_variant",
           "nano_dir", "variant_from_config", "variant_from_folder", "llama_param_count"]

LICENSE = "Llama 2 Community License (commercial use allowed; >700M MAU needs a Meta license)"
NANO_LICENSE = "same as this course (trained by the course on its own data)"
PAPER = "Rozière et al., Code Llama: Open Foundation Models for Code, arXiv:2308.12950"

# Where the claims about infilling come from. They disagree for 70B; see ``INFILLING_CHOICE``.
INFILLING_SOURCES = {
    "paper_v1": "arXiv:2308.12950 v1 (Aug 2023) abstract: '7B and 13B Code Llama and Code Llama - Instruct "
                "variants support infilling'.",
    "paper_v3": "arXiv:2308.12950 v3 (Jan 2024, adds 70B) abstract: '7B, 13B and 70B Code Llama and Code Llama "
                "- Instruct variants support infilling'.",
    "meta_readme": "github.com/meta-llama/codellama README: 'Code Llama and Code Llama - Instruct 7B and 13B "
                   "models are capable of filling in code'; only those appear in its infilling example.",
    "llama_recipes": "llama-recipes code_llama README: 'the Python fine-tuned model and 34B models are not "
                     "trained on infilling objective'.",
    "tokenizer": "The vocabularies agree with the paper: 7B/13B/70B base+Instruct carry <PRE>/<SUF>/<MID>/<EOT> "
                 "(32016 pieces); 34B and every Python model have 32000 pieces and cannot express the format.",
}
INFILLING_CHOICE = (
    "We mark 7B and 13B (base and Instruct) as infilling models: every source agrees on them. For 70B base and "
    "Instruct the updated paper says yes and Meta's README and examples say nothing; the tokens exist but we could "
    "not verify quality, so we record infilling=False with the 'paper_v3' note and do not use 70B in the infilling "
    "lesson. Instruct models infill, but base models do it better (the paper reports lower infilling scores after "
    "instruction tuning). 34B and every Python model cannot infill."
)


@dataclass(frozen=True)
class Variant:
    """One model of the family, with everything needed to reason about it offline.

    Taught in: notebook 01 §1."""

    name: str  # short key: "7b", "7b-python", "13b-instruct", "nano"
    size: str  # "7B", "13B", "34B", "70B", "nano"
    flavor: str  # "base" | "python" | "instruct"
    hub_id: str | None  # ungated copy on the Hub (None for nano)
    gated_hub_id: str | None  # Meta's own repo, needs an accepted license + HF token
    # architecture (config.json)
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool = False
    # context
    context_length: int = 16384  # max_position_embeddings = length of the long-context fine-tuning sequences
    extrapolates_to: int | None = 100_000  # the paper: stable generation up to ~100k tokens
    rope_theta: float = 1_000_000.0
    # behaviour
    infilling: bool = False
    infilling_note: str = ""
    chat_format: str | None = None  # "llama2" ([INST] ... [/INST]), "70b" ("Source: user ... <step>"), None
    license: str = LICENSE
    use_for: str = ""
    local_path: str | None = None  # nano only: a folder instead of a Hub id

    @property
    def n_params(self) -> int:
        """Exact parameter count of a Llama decoder with these numbers (no biases)."""
        return llama_param_count(self.hidden_size, self.intermediate_size, self.num_layers, self.num_heads,
                                 self.num_kv_heads, self.head_dim, self.vocab_size, self.tie_word_embeddings)

    @property
    def uses_gqa(self) -> bool:
        return self.num_kv_heads < self.num_heads

    @property
    def is_instruct(self) -> bool:
        return self.flavor == "instruct"

    @property
    def model_id(self) -> str:
        """What to pass to ``load()`` / ``from_pretrained``: the ungated Hub id, or nano's folder."""
        return self.hub_id or self.local_path or self.name

    def linear_params(self) -> int:
        """Parameters inside the decoder's nn.Linear layers (the ones 4/8-bit quantization converts)."""
        q_o = 2 * self.hidden_size * self.num_heads * self.head_dim
        k_v = 2 * self.hidden_size * self.num_kv_heads * self.head_dim
        mlp = 3 * self.hidden_size * self.intermediate_size
        return self.num_layers * (q_o + k_v + mlp)

    def kv_bytes_per_token(self, bytes_per_value: float = 2) -> float:
        """K and V for one token across all layers."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * bytes_per_value

    def as_dict(self) -> dict:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["n_params"] = self.n_params
        return d


def llama_param_count(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, head_dim: int,
                      vocab: int, tied: bool = False) -> int:
    """Exact parameter count of a Llama decoder (no biases) from its config numbers.

    Taught in: notebook 01 §1."""
    attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2  # q, o, k, v
    mlp = 3 * hidden * intermediate  # gate, up, down
    norms = 2 * hidden  # input + post-attention RMSNorm
    embeddings = vocab * hidden * (1 if tied else 2)  # embed_tokens (+ lm_head)
    return layers * (attn + mlp + norms) + hidden + embeddings  # + final norm


# --------------------------------------------------------------------------------------------
# the 12 released variants

_ARCH = {  # size: (hidden, intermediate, layers, heads, kv_heads)
    "7B": (4096, 11008, 32, 32, 32),
    "13B": (5120, 13824, 40, 40, 40),
    "34B": (8192, 22016, 48, 64, 8),
    "70B": (8192, 28672, 80, 64, 8),
}

_USE_FOR = {
    "base": "code completion and infilling in any language; the model for editors and autocompletion",
    "python": "Python completion (100B extra Python tokens); cannot infill",
    "instruct": "answering questions and following instructions about code (chat); safest default for people",
}


def _hub_name(size: str, flavor: str) -> str:
    suffix = {"base": "", "python": "-Python", "instruct": "-Instruct"}[flavor]
    return f"CodeLlama-{size.lower()}{suffix}-hf"


def _build_family() -> tuple[Variant, ...]:
    out = []
    for size, (hidden, inter, layers, heads, kv) in _ARCH.items():
        for flavor in ("base", "python", "instruct"):
            vocab = 32000 if (flavor == "python" or size == "34B") else 32016
            if size in ("7B", "13B") and flavor != "python":
                infill, note = True, "paper_v1, paper_v3, meta_readme: supported"
            elif size == "70B" and flavor != "python":
                infill, note = False, "paper_v3 says supported; meta_readme/examples only cover 7B/13B (see INFILLING_CHOICE)"
            else:
                infill, note = False, "not trained with the infilling objective; no <PRE>/<SUF>/<MID> tokens"
            if size == "70B" and flavor != "base":
                ctx, theta, extrap = 4096, 10_000.0, None  # meta-llama/codellama#188
            else:
                ctx, theta, extrap = 16384, 1_000_000.0, 100_000
            chat = None
            if flavor == "instruct":
                chat = "70b" if size == "70B" else "llama2"
            hub = _hub_name(size, flavor)
            out.append(Variant(
                name=f"{size.lower()}" + ("" if flavor == "base" else f"-{flavor}"),
                size=size, flavor=flavor,
                hub_id=f"codellama/{hub}", gated_hub_id=f"meta-llama/{hub}",
                hidden_size=hidden, intermediate_size=inter, num_layers=layers, num_heads=heads,
                num_kv_heads=kv, head_dim=hidden // heads, vocab_size=vocab,
                context_length=ctx, extrapolates_to=extrap, rope_theta=theta,
                infilling=infill, infilling_note=note, chat_format=chat,
                use_for=_USE_FOR[flavor] if (infill or flavor != "base")
                else "code completion in any language; no infilling at this size",
            ))
    return tuple(out)


FAMILY: tuple[Variant, ...] = _build_family()


# --------------------------------------------------------------------------------------------
# nano: numbers come from the shipped folder, so the registry can never drift from the weights


def nano_dir() -> Path:
    """The folder of the shipped nano model (``codellama_course/nano_model/``, a normal Hugging Face model folder).

    Taught in: notebook 00 §4, notebook 01 §3."""
    return Path(__file__).resolve().parent / "nano_model"


def _read_nano(folder: Path | None = None) -> Variant:
    folder = Path(folder) if folder is not None else nano_dir()
    if not (folder / "config.json").exists():
        raise FileNotFoundError(
            f"The nano model is not in {folder} (no config.json). It ships with the package; in a source "
            "checkout it is built by the nano training script (see notebook 08 and codellama_course/nano.py).")
    return variant_from_folder(folder, name="nano")


def variant_from_config(cfg: dict, *, name: str = "custom", local_path: str | None = None,
                        infilling: bool = False) -> Variant:
    """A :class:`Variant` for any Llama-architecture ``config.json`` (a dict), e.g. a fine-tune or nano.

    Taught in: notebook 01 §1."""
    heads = cfg["num_attention_heads"]
    rope = cfg.get("rope_parameters") or {}
    theta = float(rope.get("rope_theta", cfg.get("rope_theta") or 10_000.0))
    is_nano = name == "nano"
    return Variant(
        name=name, size="nano" if is_nano else "custom", flavor=cfg.get("codellama_course_flavor", "base"),
        hub_id=None, gated_hub_id=None,
        hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
        num_layers=cfg["num_hidden_layers"], num_heads=heads,
        num_kv_heads=cfg.get("num_key_value_heads") or heads,
        head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
        vocab_size=cfg["vocab_size"], tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        context_length=cfg.get("max_position_embeddings", 0), extrapolates_to=None, rope_theta=theta,
        infilling=infilling,
        infilling_note=("trained by the course with Code Llama's infilling transform" if infilling
                        else "no infilling tokens in its tokenizer"),
        chat_format=cfg.get("codellama_course_chat_format"),
        license=NANO_LICENSE if is_nano else "see the model's own card",
        use_for=("running every notebook offline on a CPU in seconds; same architecture, tiny numbers" if is_nano
                 else "a Llama-architecture model from a config.json"),
        local_path=local_path,
    )


def variant_from_folder(folder: str | Path, *, name: str | None = None) -> Variant:
    """A :class:`Variant` read from a local Hugging Face model folder (its config.json and tokenizer).

    Taught in: notebook 01 §1."""
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    infill = any(p.exists() and "<PRE>" in p.read_text(encoding="utf-8", errors="ignore")
                 for p in (folder / "tokenizer_config.json", folder / "tokenizer.json"))
    return variant_from_config(cfg, name=name or folder.name, local_path=str(folder), infilling=infill)


def nano_available() -> bool:
    """Is the shipped nano model in place (its ``config.json``)?

    Taught in: notebook 01 §1."""
    return (nano_dir() / "config.json").exists()


# --------------------------------------------------------------------------------------------
# public API


class UnknownVariantError(LookupError):
    """A name that is not a Code Llama variant; the message suggests the closest names.

    Taught in: notebook 01 §1."""


class VariantTable(tuple):
    """A tuple of :class:`Variant` that prints as a table (text in a terminal, HTML in Jupyter).

    Taught in: notebook 01 §1."""

    COLUMNS = ("name", "hub_id", "params", "vocab", "context", "rope θ", "GQA", "infill", "chat", "use for")

    def rows(self) -> list[tuple[str, ...]]:
        rows = []
        for v in self:
            rows.append((
                v.name, v.hub_id or (v.local_path and "codellama_course/nano_model") or "",
                _human_params(v.n_params), str(v.vocab_size), f"{v.context_length:,}",
                f"{v.rope_theta:,.0f}", f"{v.num_kv_heads}/{v.num_heads}" if v.uses_gqa else "no",
                "yes" if v.infilling else "no", v.chat_format or "-", v.use_for.split(";")[0],
            ))
        return rows

    def __str__(self) -> str:
        rows = [self.COLUMNS] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.COLUMNS))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self.COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in self.rows())
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def names(self) -> list[str]:
        return [v.name for v in self]


def _human_params(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.0f}K"


def variants(size: str | Sequence[str] | None = None, flavor: str | Sequence[str] | None = None,
             *, include_nano: bool = False) -> VariantTable:
    """All 12 Code Llama variants (7B/13B/34B/70B × base/Python/Instruct), optionally filtered.

    >>> [v.name for v in variants(size="7B")]
    ['7b', '7b-python', '7b-instruct']

    Taught in: notebook 01 §1.
    """
    sizes = {s.upper() for s in ([size] if isinstance(size, str) else size or [])}
    flavors = {f.lower() for f in ([flavor] if isinstance(flavor, str) else flavor or [])}
    bad = sizes - set(_ARCH)
    if bad:
        raise ValueError(f"unknown size {sorted(bad)}; choose from {list(_ARCH)}")
    bad = flavors - {"base", "python", "instruct"}
    if bad:
        raise ValueError(f"unknown flavor {sorted(bad)}; choose from base, python, instruct")
    out = [v for v in FAMILY if (not sizes or v.size in sizes) and (not flavors or v.flavor in flavors)]
    if include_nano and nano_available():
        out.append(_read_nano())
    return VariantTable(out)


def _norm(s: str) -> str:
    s = s.strip().lower().rstrip("/")
    for prefix in ("codellama/", "meta-llama/"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    if s.startswith("codellama-"):
        s = s[len("codellama-"):]
    if s.endswith("-hf"):
        s = s[:-3]
    return s.replace("_", "-")


def _aliases() -> dict[str, str]:
    table = {}
    for v in FAMILY:
        for alias in (v.name, _norm(v.hub_id), f"{v.size.lower()}-{v.flavor}"):
            table[alias] = v.name
    return table


def get_variant(name_or_id: str | Variant) -> Variant:
    """Look a model up by short name ("7b-instruct"), Hub id (ungated or gated), or "nano".

    Accepts ``"codellama/CodeLlama-7b-Instruct-hf"``, ``"meta-llama/CodeLlama-7b-Instruct-hf"``,
    ``"CodeLlama-7b-Instruct-hf"``, ``"7b-instruct"``, ``"nano"`` or the nano folder itself.
    Raises :class:`UnknownVariantError` (a ``LookupError``) with suggestions otherwise.

    Taught in: notebook 01 §3, notebook 01 §4.
    """
    if isinstance(name_or_id, Variant):
        return name_or_id
    key = str(name_or_id)
    norm = _norm(key)
    if norm == "nano" or (Path(key).exists() and Path(key).resolve() == nano_dir().resolve()):
        return _read_nano()
    aliases = _aliases()
    if norm in aliases:
        return next(v for v in FAMILY if v.name == aliases[norm])
    close = close_names(key)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownVariantError(
        f"{key!r} is not a Code Llama variant.{hint} Known: {', '.join(v.name for v in FAMILY)}, nano "
        "(or any Hub id such as 'codellama/CodeLlama-7b-hf').")


def close_names(name: str) -> list[str]:
    """Short names of the family (and ``nano``) that look like ``name``: a typo's likely meaning.

    Taught in: notebook 00 §3."""
    norm = _norm(name)
    names = sorted(set(_aliases()) | {"nano"})
    return [c for c in get_close_matches(norm, names, n=3, cutoff=0.6) if c != norm]


def find_variant(name_or_id: str) -> Variant | None:
    """Like :func:`get_variant` but returns None for ids outside the family (fine-tunes, local folders).

    Taught in: notebook 00 §3."""
    try:
        return get_variant(name_or_id)
    except (UnknownVariantError, FileNotFoundError):
        return None


def as_variant(model: Any) -> Variant:
    """A :class:`Variant` from a Variant, a family name/Hub id, "nano", a local folder, a config or a loaded model.

    Taught in: notebook 01 §5."""
    if isinstance(model, Variant):
        return model
    if isinstance(model, (str, Path)):
        model = str(model)
        if Path(model).is_dir() and (Path(model) / "config.json").exists():
            v = get_variant(model) if model.rstrip("/").endswith("nano_model") else None
            return v or variant_from_folder(model)
        return get_variant(model)
    config = getattr(model, "config", model)  # a PreTrainedModel or a PretrainedConfig
    if hasattr(config, "to_dict"):
        d = config.to_dict()
        name = getattr(config, "name_or_path", None) or d.get("_name_or_path") or "model"
        return variant_from_config(d, name=str(name).rstrip("/").split("/")[-1] or "model")
    if isinstance(config, dict):
        return variant_from_config(config)
    raise TypeError(f"cannot read a model's architecture from a {type(model).__name__}: pass a family name "
                    "('7b'), a Hub id, 'nano', a model folder, a config (dict or PretrainedConfig) or a loaded model")
