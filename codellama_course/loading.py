"""The one model switch, and loading a Code Llama the transformers 5 way.

Taught in notebook 00 (how to switch models) and notebook 01 (loading in each precision).

    model, tokenizer = load()                    # the model the course would choose here
    model, tokenizer = load("codellama/CodeLlama-7b-Instruct-hf", precision="4bit")

Which model: ``load(model=...)`` > the ``CODELLAMA_COURSE_MODEL`` environment variable > the default:
the embedded nano model when there is no CUDA GPU or no Hub access, else ``codellama/CodeLlama-7b-hf``
(or the Instruct/Python variant the lesson asks for with ``task=``). ``CODELLAMA_COURSE_MODEL`` may be
a Hub id, a local folder, ``nano``, a family name (``13b-instruct``) or a bare size (``13b``: the
flavour then follows the lesson).

Which precision (``precision="auto"``): :func:`~codellama_course.memory.auto_precision` asks the machine
(:mod:`codellama_course.hardware`), and :func:`~codellama_course.precision.choose_precision` decides (bf16 on
Ampere+ GPUs, fp16 on a T4, 4-bit when the model would not fit, fp32 on a CPU; ``CODELLAMA_COURSE_PRECISION``
overrides it for a whole run). Every precision name is parsed once, by
:func:`~codellama_course.precision.parse_precision`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import codellama_course.hardware as hardware  # probes called through the module: tests monkeypatch them
from .memory import FIT_CONTEXT_TOKENS, auto_precision, estimate_memory
from .precision import parse_precision, torch_dtype
from .quantization import load_dtype, quantization_config
from .registry import (FAMILY, Variant, close_names, find_variant, get_variant, nano_dir, variant_from_config,
                       variant_from_folder)

__all__ = ["load", "resolve_model", "ENV_VAR", "TASKS", "LoadError", "ModelNotAvailableError", "GatedModelError",
           "ModelWillNotFitError", "LoadInfo", "download_notice"]

ENV_VAR = "CODELLAMA_COURSE_MODEL"

# lesson task -> flavour of the default model
TASKS = {
    "base": "base", "completion": "base", "infill": "base", "infilling": "base",
    "python": "python",
    "instruct": "instruct", "chat": "instruct",
}
DEFAULT_SIZE = "7b"


class LoadError(Exception):
    """Base class of the errors ``load()`` raises on purpose, each saying what to do instead.

    Taught in: notebook 00 §4."""


class ModelNotAvailableError(LoadError, OSError):
    """The model is neither local nor in the Hugging Face cache, and the Hub cannot be reached.

    Taught in: notebook 00 §4."""


class GatedModelError(LoadError, PermissionError):
    """A gated ``meta-llama/*`` repo without a Hugging Face token.

    Taught in: notebook 00 §4."""


class ModelWillNotFitError(LoadError, MemoryError):
    """The estimate says the model cannot fit on this machine (checked before downloading).

    Taught in: notebook 01 §6."""


# --------------------------------------------------------------------------------------------
# the local cache


def _is_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
        return isinstance(hit, str)
    except Exception:
        return False


# --------------------------------------------------------------------------------------------
# which model


SIZES = ("7b", "13b", "34b", "70b")
INFILL_TASKS = ("infill", "infilling")


def _family_for(value: str, task: str) -> tuple[str, str | None]:
    """Family name/bare size → (Hub id, why it is not the size asked for). A bare size takes the flavour of
    the task; for infilling, a size that cannot infill (34B, and 70B by the course's choice) gives way to
    the largest base model below it that can."""
    flavor = TASKS.get(task)
    if flavor is None:
        raise ValueError(f"unknown task {task!r}; use one of {sorted(set(TASKS))}")
    low = value.strip().lower()
    if low in SIZES and flavor != "base":
        low = f"{low}-{flavor}"
    elif low in SIZES and task in INFILL_TASKS and not get_variant(low).infilling:
        asked = get_variant(low)
        stand_in = max((v for v in FAMILY if v.flavor == "base" and v.infilling and v.n_params < asked.n_params),
                       key=lambda v: v.n_params)
        why = ("was not trained to infill (no ▁<PRE>/▁<SUF>/▁<MID> in its vocabulary)" if asked.vocab_size == 32000
               else "is not used for infilling in this course (notebook 01: only the updated paper says it infills)")
        reason = (f"{asked.size} {why}: this lesson uses {stand_in.hub_id} instead; the lessons that do not infill "
                  f"use {asked.size}.")
        return stand_in.hub_id, reason
    return get_variant(low).hub_id, None


def _resolve(model: str | os.PathLike | Variant | None, task: str) -> tuple[str, str | None]:
    """:func:`resolve_model`, plus a sentence when the task made it pick another model than the one set."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {sorted(set(TASKS))}")
    if isinstance(model, Variant):
        model = model.model_id if model.name != "nano" else "nano"
    elif isinstance(model, os.PathLike):
        model = os.fspath(model)
    choice = model if model not in (None, "", "auto") else os.environ.get(ENV_VAR, "").strip()
    if choice and choice != "auto":
        if choice.lower() == "nano":
            return "nano", None
        if Path(choice).expanduser().is_dir():
            return str(Path(choice).expanduser()), None
        if "/" not in choice:  # a family short name such as "7b-instruct" or "13b"
            try:
                return _family_for(choice, task)
            except LookupError:
                if close_names(choice):  # a typo of a family name ("7bb-instruct"), not a Hub id like "gpt2"
                    raise
        return choice, None
    if not hardware.cuda_available() or not hardware.hub_online():
        return "nano", None
    return _family_for(DEFAULT_SIZE, task)


def resolve_model(model: str | os.PathLike | Variant | None = None, *, task: str = "base") -> str:
    """The model id every notebook uses: ``"nano"``, a Hub id, or a local folder.

    ``model`` argument > ``$CODELLAMA_COURSE_MODEL`` > nano (no CUDA GPU, or Hub unreachable) >
    ``codellama/CodeLlama-7b-hf`` (``-Instruct-hf`` for ``task="chat"``, ``-Python-hf`` for ``task="python"``).
    A bare size takes the task's flavour; ``task="infill"`` with ``34b``/``70b`` gives ``13b`` (they cannot infill).

    Taught in: notebook 00 §3.
    """
    return _resolve(model, task)[0]


# --------------------------------------------------------------------------------------------
# which precision, and does it fit


def _check_fit(v: Variant, precision: str, label: str) -> None:
    est = estimate_memory(v, precision, FIT_CONTEXT_TOKENS)
    capacity, where = hardware.capacity_bytes()
    if est.total_bytes <= capacity:
        return
    options = []
    for p in ("4bit", "8bit", "fp16"):
        e = estimate_memory(v, p, FIT_CONTEXT_TOKENS)
        if e.total_bytes <= capacity and p != precision:
            options.append(f"precision={p!r} (~{e.total_gib:.1f} GiB)")
    smaller = [f.name for f in FAMILY if f.flavor == v.flavor and
               estimate_memory(f, "4bit", FIT_CONTEXT_TOKENS).total_bytes <= capacity and f.n_params < v.n_params]
    hint = "; ".join(options) or (f"a smaller model: {', '.join(smaller)}" if smaller else "a machine with more memory")
    raise ModelWillNotFitError(
        f"{label} in {precision} needs about {est.total_gib:.1f} GiB ({est.weights_gib:.1f} GiB weights + KV cache "
        f"and activations for {FIT_CONTEXT_TOKENS:,} tokens), but {where} has {capacity / 2**30:.1f} GiB free. "
        f"Nothing was downloaded. Try {hint}, or the nano model (load('nano')). "
        "To load anyway, pass check_fit=False.")


# --------------------------------------------------------------------------------------------
# load


def _hub_config(model_id: str, token: str | None) -> dict | None:
    """The repo's ``config.json`` (a few KB): from the local cache, else from the Hub when it can be reached."""
    import json

    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    try:
        path = try_to_load_from_cache(model_id, "config.json")
        if not isinstance(path, str) and hardware.hub_online():
            path = hf_hub_download(model_id, "config.json", token=token)
        if not isinstance(path, str):
            return None
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except Exception:  # no access, not a repo, a broken file: the registry's numbers (if any) are used
        return None


# the numbers a checkpoint's config.json decides; the registry keeps what it knows about the family
_CHECKPOINT_FIELDS = ("hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                      "vocab_size", "tie_word_embeddings")


def _variant_from_checkpoint(model_id: str, token: str | None, known: Variant | None) -> Variant | None:
    """The variant as its own ``config.json`` describes it (read before any weights), so a fine-tune or a
    re-uploaded or shrunk copy is judged by what it is; the registry's entry only when no config is at hand."""
    cfg = _hub_config(model_id, token)
    if cfg is None:
        return known
    try:
        measured = variant_from_config(cfg, name=model_id.rstrip("/").split("/")[-1])
    except (KeyError, TypeError, ValueError):  # not a Llama-style config: from_pretrained will tell
        return known
    if known is None:
        return measured
    return replace(known, **{f: getattr(measured, f) for f in _CHECKPOINT_FIELDS})


# --------------------------------------------------------------------------------------------
# what a download costs, said before it starts

COLAB_DOWNLOAD_MB_PER_S = 50  # estimate of Hub -> Colab throughput, not measured by the course


def _weights_cached(model_id: str) -> bool:
    """Are the repo's safetensors weights (every shard) in the local Hugging Face cache?"""
    import json

    from huggingface_hub import try_to_load_from_cache

    try:
        index = try_to_load_from_cache(model_id, "model.safetensors.index.json")
        if isinstance(index, str):
            shards = set(json.loads(Path(index).read_text(encoding="utf-8"))["weight_map"].values())
            return all(isinstance(try_to_load_from_cache(model_id, s), str) for s in shards)
        return isinstance(try_to_load_from_cache(model_id, "model.safetensors"), str)
    except Exception:
        return False


def download_notice(model_id: str, variant: Variant | None = None) -> str | None:
    """One line saying what ``load(model_id)`` is about to download and roughly how long that takes on
    Colab, and how to stay on nano; None when nothing needs downloading (nano, a folder, cached weights).

    Taught in: notebook 00 §4."""
    if model_id == "nano" or Path(model_id).expanduser().is_dir() or _weights_cached(model_id):
        return None
    if variant is None:
        variant = _variant_from_checkpoint(model_id, None, find_variant(model_id))
    if variant is None:
        size = "its weights (size unknown)"
        eta = ""
    else:
        gb = variant.n_params * 2 / 1e9  # the checkpoints are stored in bf16/fp16
        minutes = gb * 1000 / COLAB_DOWNLOAD_MB_PER_S / 60
        size = f"{gb:.1f} GB of weights"
        eta = f", about {max(1, round(minutes))} min on Colab (estimate at ~{COLAB_DOWNLOAD_MB_PER_S} MB/s)"
    return (f"Downloading {model_id}: {size}{eta}; it stays in the Hugging Face cache for next time. "
            f"To stay on the offline nano model instead: load('nano') or {ENV_VAR}=nano.")


@dataclass(frozen=True)
class LoadInfo:
    """What ``load()`` loaded, on which device, in which precision (``model.codellama_course_info``).

    Taught in: notebook 00 §4."""

    model: str  # what was asked for, resolved ("nano", Hub id, folder)
    source: str  # what from_pretrained was given
    precision: str
    device: str
    footprint_bytes: int

    def __str__(self) -> str:
        return (f"Model: {self.model} · {self.precision} on {self.device} · "
                f"{self.footprint_bytes / 2**20:,.1f} MiB of weights")


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return str(path)


def _not_available_message(model_id: str) -> str:
    known = [v.hub_id for v in FAMILY] + [v.gated_hub_id for v in FAMILY]
    if model_id in known:  # the right name, just not downloaded: suggesting another model would mislead
        hint = " It is a Code Llama repository on the Hub, but it has not been downloaded to this machine."
    else:
        close = get_close_matches(model_id, known, n=2, cutoff=0.8)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (f"Cannot load {model_id!r}: it is not a local folder, not in your Hugging Face cache, and the Hub "
            f"cannot be reached (offline, or HF_HUB_OFFLINE=1).{hint}\n"
            f"  • To run the course offline, use the embedded nano model: load('nano'), or set {ENV_VAR}=nano "
            "(it is the default when offline).\n"
            "  • To use a real Code Llama, connect to the Hub once so it is downloaded into the cache.")


def load(model: str | None = None, precision: str = "auto", *, task: str = "base", device_map: Any = "default",
         token: str | None = None, check_fit: bool = True, verbose: bool = True, **kwargs):
    """Load ``(model, tokenizer)``: ``"nano"``, a Hub id, a family name (``"7b-instruct"``) or a local folder.

    ``precision``: ``"auto"`` (see :func:`~codellama_course.memory.auto_precision`), ``"fp32"``, ``"bf16"``, ``"fp16"``, ``"8bit"``,
    ``"4bit"`` (= ``"nf4"``; also ``"fp4"``, ``"nf4-nodq"``, ``"fp4-nodq"``, or a ``BitsAndBytesConfig``: see
    ``quantization.py``). Extra keyword arguments go to ``AutoModelForCausalLM.from_pretrained``.
    Raises :class:`ModelNotAvailableError`, :class:`GatedModelError`, :class:`ModelWillNotFitError` or
    ``BitsAndBytesUnavailableError`` with what to do instead — before downloading anything.

    Taught in: notebook 00 §4, notebook 01 §6.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_id, why = _resolve(model, task)
    if why:  # the lesson's task changed the model: always said (never happens with nano)
        print(why)
    variant: Variant | None = None
    if model_id == "nano":
        folder = nano_dir()
        if not (folder / "config.json").exists():
            raise ModelNotAvailableError(
                f"The nano model is missing from {folder}. Reinstall the package (pip install -e .) or train it "
                "(see notebook 08).")
        source, label = str(folder), "nano"
        variant = get_variant("nano")
    elif Path(model_id).expanduser().is_dir():
        folder = Path(model_id).expanduser()
        source, label = str(folder), _display_path(folder)
        if (folder / "config.json").exists():
            variant = variant_from_folder(folder)
    else:
        source = label = model_id
        cached = _is_cached(model_id)
        if not cached:
            if model_id.startswith("meta-llama/") and not hardware.hf_token_present(token):
                fam = find_variant(model_id)
                alt = f" or the ungated copy {fam.hub_id!r}" if fam else ""
                raise GatedModelError(
                    f"{model_id!r} is a gated repository: accept Meta's license on its Hub page, then provide a "
                    "token — `hf auth login`, the HF_TOKEN environment variable, or in Colab the HF_TOKEN secret "
                    f"(key icon, with 'Notebook access' on). Or use{alt or ' an ungated copy'} or load('nano').")
            if not hardware.hub_online():
                raise ModelNotAvailableError(_not_available_message(model_id))
        variant = _variant_from_checkpoint(model_id, token, find_variant(model_id))

    spec = parse_precision(precision)  # "fp4", "nf4-nodq", a BitsAndBytesConfig...: the spec keeps the details
    if spec.is_auto:
        spec = parse_precision(auto_precision(variant))
    if check_fit and variant is not None:
        _check_fit(variant, spec.storage, label)

    load_kwargs: dict[str, Any] = {}
    # raises if bitsandbytes is missing, or if a layer shape is one bitsandbytes' CPU 4-bit kernel rejects
    qconfig = quantization_config(spec, model=variant)
    if qconfig is not None:
        load_kwargs["quantization_config"] = qconfig
        load_kwargs["dtype"] = load_dtype(qconfig)
    else:
        load_kwargs["dtype"] = torch_dtype(spec)
    if device_map == "default":
        device_map = "auto" if hardware.cuda_available() else None
    if device_map is not None:
        load_kwargs["device_map"] = device_map
    if token is not None:
        load_kwargs["token"] = token
    load_kwargs.update(kwargs)

    notice = download_notice(model_id, variant)
    if notice:
        print(notice)
    tokenizer = AutoTokenizer.from_pretrained(source, **({"token": token} if token else {}))
    lm = AutoModelForCausalLM.from_pretrained(source, **load_kwargs)
    lm.eval()
    device = str(next(lm.parameters()).device)
    info = LoadInfo(model=label, source=source, precision=spec.storage, device=device,
                    footprint_bytes=lm.get_memory_footprint())
    lm.codellama_course_info = info  # what the notebooks print
    if verbose:
        print(info)
    return lm, tokenizer
