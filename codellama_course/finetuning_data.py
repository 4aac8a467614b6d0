"""What to fine-tune on: a target set the package builds, its held-out split, and training examples.

The target set is code written against a small made-up API (``kitchen.pantry.take(...)``,
``kitchen.oven.bake(...)``) that no model has seen: the course generates it, under the package's
Apache-2.0 licence, so the effect of fine-tuning is easy to see and to measure. The held-out split
holds dishes the training split never names.

Examples are token ids with labels, in the exact formats the model was trained with: plain
``<s> text </s>``, or fill-in-the-middle documents from :func:`codellama_course.nano_data.fim_transform`
(the Code Llama paper's transformation, encoded like Meta's ``encode``/``encode_infilling``), so
that training keeps infilling alive. :func:`infill_examples` builds held-out infills (one line
missing, loss on the middle only) to measure that.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

from .nano_data import fim_split, fim_transform
from .tokenizer import MetaTokenizer

__all__ = ["target_set", "fim_codec", "build_examples", "infill_examples", "KITCHEN_PROMPTS"]

IGNORE_INDEX = -100  # label of tokens the loss skips (transformers' convention)

_DISHES = [
    "bread", "apple_pie", "lentil_soup", "tomato_sauce", "rice", "pancakes", "omelette", "porridge",
    "carrot_cake", "fish_stew", "risotto", "flatbread", "pumpkin_soup", "fried_rice", "brownies", "curry",
    "muffins", "noodles", "chili", "scones", "falafel", "gnocchi", "focaccia", "dumplings", "paella",
    "crepes", "polenta", "goulash", "tortillas", "bean_stew", "cookies", "waffles", "couscous", "pilaf",
    "meatballs", "quiche", "granola", "minestrone", "frittata", "shortbread",
]
_INGREDIENTS = [
    "flour", "sugar", "butter", "eggs", "milk", "salt", "rice", "tomato", "onion", "garlic", "carrot",
    "lentils", "oats", "beans", "pepper", "cheese", "apple", "pumpkin", "fish", "olive_oil", "yeast",
    "chickpeas", "potato", "cream", "honey", "spinach", "noodles", "stock",
]
# method: (verb, tool, vessel, how the dish is finished)
_METHODS = {
    "bake": ("bake", "oven", "tray", "preheat(celsius={heat})"),
    "simmer": ("simmer", "stove", "pot", "light(flame={flame})"),
    "fry": ("fry", "stove", "pan", "light(flame={flame})"),
}

# Prompts whose completions show the effect (dishes from the held-out split).
KITCHEN_PROMPTS = [
    'def bake_quiche(kitchen: Kitchen) -> Plate:\n    """Bake quiche for 4 guests."""\n',
    'def simmer_minestrone(kitchen: Kitchen) -> Plate:\n    """Simmer minestrone for 6 guests."""\n',
]


def _recipe(dish: str, rng: random.Random) -> str:
    method = rng.choice(sorted(_METHODS))
    verb, tool, vessel, start = _METHODS[method]
    guests = rng.choice([2, 4, 6, 8])
    title = dish.replace("_", " ")
    lines = [f"def {verb}_{dish}(kitchen: Kitchen) -> Plate:",
             f'    """{verb.capitalize()} {title} for {guests} guests."""',
             f'    {vessel} = kitchen.pantry.take("{rng.choice(_INGREDIENTS)}", grams={rng.choice(range(50, 550, 50))})']
    for _ in range(rng.randint(0, 2)):
        lines.append(f'    {vessel}.add(kitchen.pantry.take("{rng.choice(_INGREDIENTS)}", '
                     f'grams={rng.choice(range(25, 325, 25))}))')
    if rng.random() < 0.5:
        lines.append(f"    {vessel}.stir(minutes={rng.randint(1, 10)})")
    lines.append(f"    kitchen.{tool}.{start.format(heat=rng.choice(range(160, 260, 20)), flame=rng.randint(1, 9))}")
    lines.append(f"    {vessel} = kitchen.{tool}.{verb}({vessel}, minutes={rng.choice(range(5, 65, 5))})")
    lines.append(f"    return {vessel}.serve(guests={guests})")
    return "\n".join(lines) + "\n"


def target_set(n_train: int = 240, n_heldout: int = 48, *, heldout_fraction: float = 0.2,
               seed: int = 0) -> tuple[list[str], list[str]]:
    """``(train, heldout)`` recipes written against the made-up kitchen API (the course's fine-tuning
    target). Held-out recipes cook dishes the training recipes never name.

    Taught in: notebook 09 §1.
    """
    if n_train < 1 or n_heldout < 1:
        raise ValueError(f"n_train and n_heldout must be >= 1 (got {n_train}, {n_heldout})")
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be between 0 and 1 (got {heldout_fraction})")
    dishes = sorted(_DISHES)
    random.Random(seed).shuffle(dishes)
    cut = max(1, round(len(dishes) * heldout_fraction))
    prompted = {p.split("_", 1)[1].split("(")[0] for p in KITCHEN_PROMPTS}
    held = sorted(prompted | set(dishes[:cut]))
    train = [d for d in dishes if d not in held]
    rng = random.Random(seed + 1)
    return ([_recipe(rng.choice(train), rng) for _ in range(n_train)],
            [_recipe(rng.choice(held), rng) for _ in range(n_heldout)])


def _tokenizer_model_file(tokenizer: Any) -> Path:
    """The SentencePiece ``tokenizer.model`` a transformers tokenizer was built from."""
    candidates = [getattr(tokenizer, "vocab_file", None), (getattr(tokenizer, "init_kwargs", None) or {}).get("vocab_file")]
    name = str(getattr(tokenizer, "name_or_path", "") or "")
    if name:
        candidates.append(Path(name) / "tokenizer.model")
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    if name and not Path(name).exists():  # a Hub id (Code Llama repos ship tokenizer.model)
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(name, "tokenizer.model"))
    raise FileNotFoundError(
        f"no SentencePiece tokenizer.model found for tokenizer {name!r}: FIM examples need the model's own "
        "vocabulary file (Code Llama and nano ship one). Pass fim_codec(path_to_tokenizer_model) instead.")


def fim_codec(tokenizer_or_model_file: Any) -> MetaTokenizer:
    """The encoder that builds examples exactly like Meta's ``encode``/``encode_infilling``, from a
    transformers tokenizer (its ``tokenizer.model``) or a path to a SentencePiece model.

    Taught in: notebook 09 §1.
    """
    source = tokenizer_or_model_file
    path = Path(source) if isinstance(source, (str, Path)) else _tokenizer_model_file(source)
    codec = MetaTokenizer.from_file(path)
    if codec.fim_ids() is None:
        raise ValueError(f"{path} has no infilling pieces (▁<PRE> ▁<SUF> ▁<MID> ▁<EOT>): this model cannot be "
                         "trained to infill; build plain examples (fim=False).")
    return codec


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of documents, not one string")
    kept = [t for t in texts if t and t.strip()]
    if not kept:
        raise ValueError("the dataset is empty (no non-blank documents): give at least one document to train on")
    return kept


def _check_seq_len(seq_len: int, context: int | None) -> None:
    if seq_len < 8:
        raise ValueError(f"seq_len={seq_len} is too short: use at least 8 tokens")
    if context is not None and seq_len > context:
        raise ValueError(f"seq_len={seq_len} is beyond the model's context of {context} tokens "
                         f"(config.max_position_embeddings): use seq_len <= {context}")


def build_examples(codec: MetaTokenizer, texts: Sequence[str], *, seq_len: int = 256, fim: bool = False,
                   seed: int = 0, context: int | None = None) -> list[dict[str, list[int]]]:
    """Training examples ``{"input_ids", "labels"}`` from documents: plain ``<s> text </s>``, or (``fim=True``)
    :func:`~codellama_course.nano_data.fim_transform`'s mix of PSM, SPM and plain documents. Examples are cut
    at ``seq_len`` tokens; ``context`` (the model's ``max_position_embeddings``) refuses a longer ``seq_len``.

    Taught in: notebook 09 §1, notebook 09 §5.
    """
    texts = _check_texts(texts)
    _check_seq_len(seq_len, context)
    rng = random.Random(seed)
    out = []
    for text in texts:
        if fim:
            ids = fim_transform(codec, text, rng, line_middle_rate=0.5, single_line_share=0.5)
        else:
            ids = [codec.bos_id, *codec.encode(text), codec.eos_id]
        ids = ids[:seq_len]
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


def infill_examples(codec: MetaTokenizer, texts: Sequence[str], *, seed: int = 0,
                    seq_len: int = 256) -> list[dict[str, list[int]]]:
    """Held-out infills: each document with one whole line missing, as a PSM prompt
    (``<s> ▁<PRE> prefix ▁<SUF> suffix ▁<MID>``, the layout ``fim_transform`` trains and Meta's
    ``infilling_prompt_tokens`` builds), labelled on the missing line and ``▁<EOT>`` only.

    Taught in: notebook 09 §5.
    """
    texts = _check_texts(texts)
    _check_seq_len(seq_len, None)
    rng = random.Random(seed)
    out = []
    for text in texts:
        prefix, middle, suffix = fim_split(text, rng, line_middle_rate=1.0, single_line_share=1.0)
        prompt = [codec.bos_id, codec.prefix_id, *codec.encode(prefix), codec.suffix_id,
                  *codec.encode_infilling(suffix), codec.middle_id]
        answer = [*codec.encode_infilling(middle), codec.eot_id]
        ids = (prompt + answer)[:seq_len]
        labels = ([IGNORE_INDEX] * len(prompt) + answer)[:seq_len]
        out.append({"input_ids": ids, "labels": labels})
    return out
