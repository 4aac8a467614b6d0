"""Student copies (scripts/notebooks.py student): the exercises without their solutions. Each copy is run
offline as a student would run it: every exercise cell fails with the one-line "not solved yet" assert and
nothing else, every other cell runs, and no solution line is left in it.

The runs work in a second process started when collection ends (tests/conftest.py), beside the rest of the
suite; these tests run last and wait for it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from _background import ROOT, BackgroundRun

NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUN = BackgroundRun("student-copies-", lambda d: [sys.executable, str(ROOT / "scripts" / "notebooks.py"), "student",
                                                  "--check", "--out", str(d / "student"),
                                                  "--report", str(d / "report.json")], timeout_s=30 * 60)
pytestmark = [pytest.mark.slow, pytest.mark.background(start=RUN.start)]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_student_copy_fails_only_at_its_exercises(name):
    code, output = RUN.wait()
    report = RUN.dir / "report.json"
    assert report.exists(), f"the student-copy run died (exit {code}):\n{output[-6000:]}"
    problems = json.loads(report.read_text())[name]
    assert problems == [], "\n".join(problems)
