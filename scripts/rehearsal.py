#!/usr/bin/env python
"""Real-repo rehearsal: every lesson notebook against stand-ins of the real Code Llama repos, offline.

    python scripts/rehearsal.py                              # 7b,13b,34b,70b x notebooks 00-07
    python scripts/rehearsal.py --sizes 7b --notebooks 03,04 --keep --hf-home /tmp/standins
    python scripts/rehearsal.py --sizes 7b --env NAME=VALUE --out /tmp/runs   # extra kernel environment;
                                                                              # keep the executed notebooks

A stand-in is a Hugging Face repo in a private offline cache (``HF_HOME``, the real hub-cache layout:
``hub/models--codellama--CodeLlama-7b-hf/{refs/main,blobs,snapshots/<rev>}``) under the real id
(``codellama/...`` and ``meta-llama/...``), with

* the real tokenizer: SentencePiece vocabularies that reproduce the real ids (32016 pieces with
  ``▁<PRE>``..``▁<EOT>`` at 32007-32010 for 7B/13B/70B base and Instruct, ``<step>`` at 32015 for
  70B-Instruct, the plain 32000-piece Llama 2 vocabulary for 34B and every Python model), read from
  ``../shared/reference/codellama-tokenizers/`` at build time and never copied into the project (the
  ``tokenizer.json`` beside it is what transformers 5 converts from that ``tokenizer.model``, not the Hub's);
* the Hub's ``tokenizer_config.json`` fields, and the Hub's ``chat_template`` on the Instruct repos
  (``codellama_course.prompts.HUB_CHAT_TEMPLATE`` / ``HUB_CHAT_TEMPLATE_70B``; where they come from is
  written there);
* the real ``config.json`` fields of each repo (vocabulary size, context, RoPE θ, bf16 checkpoint dtype,
  from ``codellama_course.registry``) but a shrunk Llama architecture with random weights, so a notebook
  runs in seconds on a CPU and ``load()`` judges the checkpoint by what it is.

Each notebook runs in a fresh kernel (nbclient, outputs not compared) with ``CODELLAMA_COURSE_MODEL=<size>``,
``HF_HUB_OFFLINE=1`` and ``HF_HOME`` pointing at the stand-ins, two at a time. Exit status 1 if any failed;
0 with a message when the reference vocabularies are absent (nothing to rehearse with).

Importable: :func:`build_standins`, :func:`run_notebook`, :func:`rehearse`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
REFERENCE_DIR = Path(os.environ.get("CODELLAMA_COURSE_REFERENCE_DIR")
                     or ROOT.parent / "shared" / "reference" / "codellama-tokenizers")
SIZES = ("7b", "13b", "34b", "70b")
LESSONS = ("00", "01", "02", "03", "04", "05", "06", "07")
ORGS = ("codellama", "meta-llama")

# the shrunk architecture: head_dim 16, GQA kept where the real model has it (34B, 70B); every Linear's
# out_features a multiple of 32, as bitsandbytes' fused CPU 4-bit kernel requires (notebook 01 loads in 4-bit)
SHRUNK = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
SHRUNK_KV_HEADS = {"7B": 4, "13B": 4, "34B": 2, "70B": 2}


class ReferenceMissing(RuntimeError):
    """The reference vocabularies are not on this machine: there is nothing to rehearse with."""


def vocabulary_file(variant) -> Path:
    """The reference SentencePiece model that reproduces this variant's tokenizer."""
    if variant.vocab_size == 32000:
        name = "codellama-34b-python.model"
    elif variant.chat_format == "70b":
        name = "codellama-70b-instruct.model"
    else:
        name = "codellama-7b-13b.model"
    path = REFERENCE_DIR / name
    if not path.is_file():
        raise ReferenceMissing(f"reference vocabulary not available: {path} (the rehearsal needs "
                               "../shared/reference/codellama-tokenizers next to the project)")
    return path


def reference_missing() -> str | None:
    """Why the rehearsal cannot run here (the reference vocabularies are absent), or None."""
    names = ("codellama-7b-13b.model", "codellama-70b-instruct.model", "codellama-34b-python.model")
    absent = [n for n in names if not (REFERENCE_DIR / n).is_file()]
    if absent:
        return (f"reference vocabularies not available in {REFERENCE_DIR} ({', '.join(absent)}); "
                "they are test data outside the project")
    return None


def hub_config(variant) -> dict:
    """config.json with the repo's real fields and a shrunk architecture."""
    cfg = {
        "_name_or_path": variant.hub_id,
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "max_position_embeddings": variant.context_length,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": variant.rope_theta,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": variant.vocab_size,
        **SHRUNK,
        "num_key_value_heads": SHRUNK_KV_HEADS[variant.size],
    }
    return cfg


def tokenizer_config(variant) -> dict:
    """tokenizer_config.json shaped like the Hub's CodeLlama repos (+ the Hub's chat template on Instruct)."""
    from codellama_course.prompts import HUB_CHAT_TEMPLATE, HUB_CHAT_TEMPLATE_70B

    fim = variant.vocab_size == 32016
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
        "fill_token": "<FILL_ME>" if fim else None,
        "prefix_token": "▁<PRE>" if fim else None,
        "middle_token": "▁<MID>" if fim else None,
        "suffix_token": "▁<SUF>" if fim else None,
        "eot_token": "▁<EOT>" if fim else None,
        "model_max_length": 1000000000000000019884624838656,
    }
    if variant.chat_format == "llama2":
        cfg["chat_template"] = HUB_CHAT_TEMPLATE
    elif variant.chat_format == "70b":
        cfg["chat_template"] = HUB_CHAT_TEMPLATE_70B
    return cfg


def _revision(repo_id: str) -> str:
    return hashlib.sha1(f"codellama-course stand-in {repo_id}".encode()).hexdigest()


def _write_repo(hub_cache: Path, repo_id: str, files: dict[str, Path]) -> Path:
    """Put ``files`` (name -> source) into the hub cache as ``repo_id`` at refs/main; returns the snapshot."""
    repo_dir = hub_cache / ("models--" + repo_id.replace("/", "--"))
    rev = _revision(repo_id)
    snapshot = repo_dir / "snapshots" / rev
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo_dir / "blobs").mkdir(exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(rev)
    for name, source in files.items():
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        blob = repo_dir / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(source, blob)
        link = snapshot / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def build_standins(hf_home: str | os.PathLike, sizes=SIZES) -> list[str]:
    """Build stand-ins of every flavour of ``sizes`` under ``hf_home/hub``; returns the repo ids written.

    Raises :class:`ReferenceMissing` when the reference vocabularies are absent.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as transformers_logging

    from codellama_course.registry import variants

    transformers_logging.disable_progress_bar()

    sizes = [s for s in sizes if s != "nano"]  # the shipped model needs no stand-in
    hub_cache = Path(hf_home) / "hub"
    hub_cache.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    if not sizes:
        return written
    with tempfile.TemporaryDirectory(prefix="standin-") as work:
        work = Path(work)
        tokenizer_dirs: dict[tuple[str, str], Path] = {}
        for variant in variants(size=[s.upper() for s in sizes]):
            vocab = vocabulary_file(variant)
            staging = work / variant.name
            staging.mkdir()
            # tokenizer: the Hub's files (tokenizer.model + tokenizer_config.json), plus the tokenizer.json
            # transformers writes from them (converted once per vocabulary and chat template)
            tok_cfg = tokenizer_config(variant)
            key = (vocab.name, tok_cfg.get("chat_template") or "")
            if key not in tokenizer_dirs:
                src = work / f"tok-{len(tokenizer_dirs)}"
                src.mkdir()
                shutil.copyfile(vocab, src / "tokenizer.model")  # a temp dir, never the project
                (src / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2), encoding="utf-8")
                out = work / f"tok-{len(tokenizer_dirs)}-saved"
                AutoTokenizer.from_pretrained(src).save_pretrained(out)
                shutil.copyfile(src / "tokenizer.model", out / "tokenizer.model")
                (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2), encoding="utf-8")
                (out / "chat_template.jinja").unlink(missing_ok=True)  # the Hub kept it in tokenizer_config
                tokenizer_dirs[key] = out
            files = {p.name: p for p in tokenizer_dirs[key].iterdir() if p.is_file()}
            # weights: shrunk architecture, random, stored in bf16 like the real checkpoints
            cfg = hub_config(variant)
            torch.manual_seed(int(hashlib.sha1(variant.name.encode()).hexdigest()[:8], 16))
            model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if not k.startswith("_")}))
            model.to(torch.bfloat16).save_pretrained(staging)
            (staging / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
            (staging / "generation_config.json").write_text(
                json.dumps({"bos_token_id": 1, "eos_token_id": 2}, indent=2), encoding="utf-8")
            files.update({p.name: p for p in staging.iterdir() if p.is_file()})
            for org in ORGS:
                repo_id = f"{org}/{variant.hub_id.split('/', 1)[1]}"
                _write_repo(hub_cache, repo_id, files)
                written.append(repo_id)
    return written


# --------------------------------------------------------------------------------------------
# running notebooks


def _notebook_tools():
    """scripts/notebooks.py (QUIET_ENV: the environment tests and ``execute`` run notebooks under)."""
    import importlib.util

    if "_notebook_tools" not in sys.modules:  # the root conftest.py loads it under this name too
        spec = importlib.util.spec_from_file_location("_notebook_tools", ROOT / "scripts" / "notebooks.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["_notebook_tools"] = module
        spec.loader.exec_module(module)
    return sys.modules["_notebook_tools"]


def notebook_env(hf_home: str | os.PathLike | None, size: str | None, extra: dict[str, str] | None = None) -> dict:
    """The environment a rehearsal kernel runs under: the quiet test environment + the model switch."""
    env = dict(os.environ)
    env.update(_notebook_tools().QUIET_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    if hf_home is not None:
        env["HF_HOME"] = str(hf_home)
        env["HF_HUB_CACHE"] = str(Path(hf_home) / "hub")
        env.pop("HUGGINGFACE_HUB_CACHE", None)
        env.pop("TRANSFORMERS_CACHE", None)
    if size is not None:
        env["CODELLAMA_COURSE_MODEL"] = size
    env.update(extra or {})
    return env


@dataclass
class Result:
    size: str
    notebook: str
    ok: bool
    seconds: float
    error: str = ""


def run_notebook(path: str | os.PathLike, env: dict[str, str], timeout: int = 600,
                 save_to: str | os.PathLike | None = None) -> tuple[bool, float, str]:
    """Execute a notebook in a fresh kernel with ``env``; outputs are not compared (``save_to``: write the
    executed notebook there, failed or not, to read what a real model's run prints).

    Returns ``(ok, seconds, error)``: the error is the failing cell's exception name and message.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    # the kernel process's own stderr (startup notices, a crash) goes to a log, shown when the kernel dies
    log = tempfile.TemporaryFile(mode="w+", prefix="rehearsal-kernel-")
    try:
        client.execute(env=env, stderr=log)
    except CellExecutionError as err:
        _save(nb, save_to)
        where = next((f"cell {i} ({''.join(c.source).strip().splitlines()[-1][:80]!r})"
                      for i, c in enumerate(nb.cells) if c.cell_type == "code"
                      and any(o.get("output_type") == "error" for o in c.get("outputs", []))), "a cell")
        return False, time.perf_counter() - start, f"{err.ename}: {err.evalue} in {where}"[:500]
    except (CellTimeoutError, DeadKernelError) as err:
        _save(nb, save_to)
        log.seek(0)
        tail = " | ".join(log.read().strip().splitlines()[-3:])
        return False, time.perf_counter() - start, f"{type(err).__name__}: {err} (kernel stderr: {tail})"[:500]
    finally:
        log.close()
    _save(nb, save_to)
    return True, time.perf_counter() - start, ""


def _save(nb, path: str | os.PathLike | None) -> None:
    if path is not None:
        import nbformat

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))


def _run_one(args: tuple[str, str, str, dict, str | None]) -> Result:
    size, notebook, path, env, out = args
    try:
        ok, seconds, error = run_notebook(path, env, save_to=out and Path(out) / size / Path(path).name)
    except Exception:  # a kernel that would not start: report it as this notebook's failure
        ok, seconds, error = False, 0.0, traceback.format_exc(limit=1)[-400:]
    return Result(size, notebook, ok, seconds, error)


def lesson_paths(numbers=LESSONS) -> dict[str, Path]:
    paths = {}
    for number in numbers:
        found = sorted(NOTEBOOK_DIR.glob(f"{number}_*.ipynb"))
        if not found:
            raise FileNotFoundError(f"no notebook {number}_*.ipynb in {NOTEBOOK_DIR}")
        paths[number] = found[0]
    return paths


def rehearse(sizes=SIZES, notebooks=LESSONS, *, hf_home: str | os.PathLike | None = None, keep: bool = False,
             extra_env: dict[str, str] | None = None, jobs: int = 2,
             out: str | os.PathLike | None = None) -> list[Result]:
    """Build the stand-ins and run ``notebooks`` once per size, ``jobs`` kernels at a time (``out``: keep the
    executed notebooks as ``out/<size>/<notebook>``)."""
    paths = lesson_paths(notebooks)
    home = Path(hf_home) if hf_home else Path(tempfile.mkdtemp(prefix="codellama-rehearsal-"))
    try:
        # every size, whichever are rehearsed: a lesson may take another (34B/70B infill with 13B)
        missing = [s for s in SIZES if not (home / "hub" / _repo_dir(s)).is_dir()]
        if missing:
            build_standins(home, missing)
        todo = [(size, number, str(paths[number]), notebook_env(home, size, extra_env), out and str(out))
                for size in sizes for number in notebooks]
        # slowest first, so the two workers finish together
        todo.sort(key=lambda t: t[1] in ("06", "07", "02", "03"), reverse=True)
        if jobs <= 1:
            return [_run_one(t) for t in todo]
        import multiprocessing

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(_run_one, todo))
    finally:
        if not keep and not hf_home:
            shutil.rmtree(home, ignore_errors=True)


def _repo_dir(size: str) -> str:
    return f"models--codellama--CodeLlama-{size.lower()}-hf"


def table(results: list[Result], sizes, notebooks) -> str:
    """size x notebook: "ok 12s" / "FAIL 3s", then the errors."""
    by = {(r.size, r.notebook): r for r in results}
    lines = ["size  " + "".join(f"{n:>10}" for n in notebooks)]
    for size in sizes:
        cells = []
        for n in notebooks:
            r = by.get((size, n))
            cells.append(f"{'-':>10}" if r is None else f"{('ok' if r.ok else 'FAIL'):>5} {r.seconds:3.0f}s")
        lines.append(f"{size:5} " + "".join(cells))
    failures = [r for r in results if not r.ok]
    for r in failures:
        lines.append(f"FAIL {r.size} {r.notebook}: {r.error}")
    return "\n".join(lines)


def _csv(value: str, allowed) -> list[str]:
    items = [v.strip().lower() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {','.join(allowed)}")
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda v: _csv(v, SIZES + ("nano",)), default=list(SIZES),
                        help="comma-separated sizes (default: 7b,13b,34b,70b; nano runs the shipped model, "
                             "for timings side by side)")
    parser.add_argument("--notebooks", type=lambda v: _csv(v, LESSONS + ("08",)), default=list(LESSONS),
                        help="comma-separated notebook numbers (default: 00-07)")
    parser.add_argument("--hf-home", help="build the stand-ins here (reused if present) instead of a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temp HF_HOME and print where it is")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the kernels (repeatable), e.g. CODELLAMA_COURSE_PRECISION=fp16")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at the same time (default 2)")
    parser.add_argument("--out", help="write the executed notebooks to OUT/<size>/ (to read what they print)")
    parser.add_argument("--build-only", action="store_true", help="build the stand-ins into --hf-home and stop")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--env takes NAME=VALUE, got {item!r}")
        extra[name] = value
    sys.path.insert(0, str(ROOT))
    missing = reference_missing()
    if missing:
        print(f"rehearsal skipped: {missing}")
        return 0
    if args.build_only:
        if not args.hf_home:
            parser.error("--build-only needs --hf-home")
        repos = build_standins(args.hf_home, args.sizes)
        print(f"{len(repos)} stand-in repos in {Path(args.hf_home) / 'hub'}")
        return 0
    hf_home = args.hf_home
    if args.keep and not hf_home:
        hf_home = tempfile.mkdtemp(prefix="codellama-rehearsal-")
    start = time.perf_counter()
    results = rehearse(args.sizes, args.notebooks, hf_home=hf_home, keep=args.keep, extra_env=extra,
                       jobs=args.jobs, out=args.out)
    print(table(results, args.sizes, args.notebooks))
    print(f"{sum(r.ok for r in results)}/{len(results)} passed in {time.perf_counter() - start:.0f} s"
          + (f"; stand-ins in {hf_home}" if hf_home else ""))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
