"""What a teacher needs from a notebook, computed from its cells (used by scripts/notebooks.py; no I/O here).

- **Exercises**: a code cell tagged ``exercise`` holds, in this order, optional given code, a ``# your answer``
  line, the solution, a ``# check`` line and the check (asserts). :func:`student_source` replaces the solution
  with ``name = ...  # your answer`` for every name it assigns and opens the check with one assert that fails
  with "not solved yet" until the student has replaced every ``...``.
- **Structure**: the sections of a notebook (its ``## `` headings), its main path (title to ``## Summary``) and
  its optional ``## Deep dive: ...`` sections.
- **Learning time**: an estimate from the content (:func:`learning_minutes`; the formula is in TEACHING.md).
- **Slides**: the main path as a reveal.js deck, slide metadata computed from the headings (:func:`slides`).
"""

from __future__ import annotations

import ast
import copy
import math
import re
import textwrap
from typing import NamedTuple

EXERCISE_TAG = "exercise"
ANSWER_MARK = "# your answer"
CHECK_MARK = "# check"
NOT_SOLVED = "not solved yet"

# ---- exercises ------------------------------------------------------------------------------------


class ExerciseError(ValueError):
    """An exercise cell that does not follow the convention (docs/DEVELOPING.md, "Exercises")."""


class Exercise(NamedTuple):
    given: list[str]     # lines before "# your answer": code the student gets as it is
    indent: str          # indentation of the two marker lines (the solution and the check start there)
    solution: list[str]  # the lines between "# your answer" and "# check"
    check: list[str]     # the lines after "# check"
    names: list[str]     # the names the solution assigns, in order


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_exercise(cell) -> bool:
    return cell.get("cell_type") == "code" and EXERCISE_TAG in cell.get("metadata", {}).get("tags", [])


def _bound_names(tree: ast.Module) -> list[str]:
    names: list[str] = []

    def target(node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            names.append(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                target(elt)
        elif isinstance(node, ast.Starred):
            target(node.value)

    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                target(t)
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            target(stmt.target)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names += [(a.asname or a.name).split(".")[0] for a in stmt.names]
    return list(dict.fromkeys(names))


def parse_exercise(source: str) -> Exercise:
    """Split an exercise cell; raise :class:`ExerciseError` saying what is wrong and how to write it."""
    lines = source.split("\n")
    answers = [i for i, line in enumerate(lines) if line.strip() == ANSWER_MARK]
    checks = [i for i, line in enumerate(lines) if line.strip() == CHECK_MARK]
    layout = f"write it as: given code (optional), '{ANSWER_MARK}', the solution, '{CHECK_MARK}', the asserts"
    if len(answers) != 1 or len(checks) != 1 or checks[0] < answers[0]:
        raise ExerciseError(f"needs one '{ANSWER_MARK}' line and one '{CHECK_MARK}' line after it; {layout}")
    a, c = answers[0], checks[0]
    indent = lines[a][: len(lines[a]) - len(lines[a].lstrip())]
    if lines[c][: len(lines[c]) - len(lines[c].lstrip())] != indent:
        raise ExerciseError(f"'{ANSWER_MARK}' and '{CHECK_MARK}' must be indented alike (the same block)")
    solution, check = lines[a + 1:c], lines[c + 1:]
    while solution and not solution[-1].strip():
        solution.pop()
    try:
        tree = ast.parse(textwrap.dedent("\n".join(solution)))
        check_tree = ast.parse(textwrap.dedent("\n".join(check)))
    except SyntaxError as exc:
        raise ExerciseError(f"the solution or the check is not valid Python on its own ({exc.msg}); {layout}") from None
    names = _bound_names(tree)
    if not names:
        raise ExerciseError("the solution assigns no name: make it set the answer, e.g. `answer = ...` or a `def`")
    if not any(isinstance(n, ast.Assert) for n in ast.walk(check_tree)):
        raise ExerciseError(f"the check (after '{CHECK_MARK}') has no assert")
    return Exercise(lines[:a], indent, solution, check, names)


def check_leaks(exercise: Exercise) -> list[str]:
    """Ways the check would show the expected answer: an assert message that is not plain text, a print
    of anything but the student's own names."""
    problems = []
    tree = ast.parse(textwrap.dedent("\n".join(exercise.check)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.msg is not None and not (
                isinstance(node.msg, ast.Constant) and isinstance(node.msg.value, str)):
            problems.append(f"line `{ast.unparse(node)[:70]}`: an assert message may be plain text only "
                            "(a computed message shows the expected value when the check fails)")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            shown = {n.id for arg in node.args for n in ast.walk(arg) if isinstance(n, ast.Name)}
            if shown - set(exercise.names):
                problems.append(f"`{ast.unparse(node)[:70]}` prints {sorted(shown - set(exercise.names))}, which "
                                "the student did not write: print only the answer's own names")
    return problems


def student_source(source: str) -> str:
    """The exercise cell as a student gets it: placeholders for the solution (a function's shows its signature),
    a "not solved yet" assert."""
    ex = parse_exercise(source)
    tree = ast.parse(textwrap.dedent("\n".join(ex.solution)))
    signatures = {f.name: f"def {f.name}({ast.unparse(f.args)})" for f in tree.body
                  if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    placeholders = [f"{ex.indent}{name} = ...  {ANSWER_MARK}" + (f": {signatures[name]}" if name in signatures else "")
                    for name in ex.names]
    if len(ex.names) == 1:
        guard = (f'assert {ex.names[0]} is not ..., "{NOT_SOLVED}: replace the ... with your answer"')
    else:
        guard = (f"assert all(v is not ... for v in ({', '.join(ex.names)})), "
                 f'"{NOT_SOLVED}: replace each ... with your answer"')
    return "\n".join(ex.given + placeholders + [ex.indent + CHECK_MARK, ex.indent + guard] + ex.check)


def student_notebook(nb):
    """A copy of ``nb`` for students: every exercise cell as :func:`student_source`, without its outputs."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if is_exercise(cell):
            cell.source = student_source(_source(cell))
            cell.outputs, cell.execution_count = [], None
    return out


def run_problems(nb) -> list[str]:
    """What went wrong in an executed student copy: every exercise cell must fail with the one-line
    "not solved yet" assert, every other cell must run."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        seen = [f"{o.get('ename')}: {o.get('evalue')}" for o in errors]
        if is_exercise(cell):
            if len(errors) != 1 or errors[0].get("ename") != "AssertionError" \
                    or not str(errors[0].get("evalue")).startswith(NOT_SOLVED) or "\n" in errors[0].get("evalue"):
                problems.append(f"cell {i} (exercise): expected only AssertionError '{NOT_SOLVED}...', got {seen or 'no error'}")
        elif errors:
            problems.append(f"cell {i}: {seen[0][:300]}")
    return problems


def solution_leaks(teacher_nb, student_nb) -> list[str]:
    """Solution lines of ``teacher_nb`` that appear in ``student_nb`` (and nowhere else in ``teacher_nb``)."""
    solutions, elsewhere = set(), []
    for cell in teacher_nb.cells:
        if is_exercise(cell):
            ex = parse_exercise(_source(cell))
            solutions |= {line.strip() for line in ex.solution if line.strip() and not line.strip().startswith("#")}
            elsewhere += ex.given + ex.check
        else:
            elsewhere.append(_source(cell))
    other = "\n".join(elsewhere)
    student = "\n".join(_source(c) for c in student_nb.cells)
    return sorted(line for line in solutions if line in student and line not in other)


# ---- structure --------------------------------------------------------------------------------------

H2 = re.compile(r"^## +(.+?)\s*$", re.M)
DEEP_DIVE = "Deep dive: "
MAX_MAIN_PATH_CELLS = 25


def headings(cell) -> list[str]:
    return H2.findall(_source(cell)) if cell.get("cell_type") == "markdown" else []


def _index(nb, title: str, prefix: bool = False) -> int | None:
    for i, cell in enumerate(nb.cells):
        if any(h.startswith(title) if prefix else h == title for h in headings(cell)):
            return i
    return None


def structure_problems(nb) -> list[str]:
    """How ``nb`` departs from the course structure (docs/DEVELOPING.md, "Structure of a notebook")."""
    problems = []
    summary, exercises = _index(nb, "Summary"), _index(nb, "Exercises")
    changed = _index(nb, "What changed since the blog")
    if summary is None or exercises is None or changed is None:
        return ["needs '## Summary', '## Exercises' and '## What changed since the blog'"]
    if summary > MAX_MAIN_PATH_CELLS:
        problems.append(f"the main path (the cells before '## Summary') has {summary} cells, more than "
                        f"{MAX_MAIN_PATH_CELLS}: move digressions into '## {DEEP_DIVE}<topic>' sections after the exercises")
    section = ""
    for i, cell in enumerate(nb.cells):
        if is_exercise(cell) and section != "Exercises" and not section.startswith(DEEP_DIVE):
            problems.append(f"cell {i}: an exercise belongs under '## Exercises', or at the end of the deep dive "
                            "whose material it needs")
        for h in headings(cell):
            section = h
            if h.startswith(DEEP_DIVE) and not exercises < i < changed:
                problems.append(f"cell {i}: '## {h}' must come after '## Exercises' and before "
                                "'## What changed since the blog'")
            elif h.lower().startswith("deep dive") and not h.startswith(DEEP_DIVE):
                problems.append(f"cell {i}: write the heading as '## {DEEP_DIVE}<topic>', not '## {h}'")
    return problems


def segments(nb) -> list[tuple[str, list]]:
    """The notebook as (H2 heading, cells) pieces; markdown cells split at each H2 (the title piece: "")."""
    out: list[tuple[str, list]] = [("", [])]
    for cell in nb.cells:
        if cell.get("cell_type") != "markdown" or not headings(cell):
            out[-1][1].append(cell)
            continue
        parts = re.split(r"(?m)^(?=## )", _source(cell))
        for k, part in enumerate(parts):
            piece = copy.deepcopy(cell)
            piece.source = part.rstrip("\n")
            if k and "id" in piece:
                piece.id = f"{cell.id}-{k}"  # ids stay unique
            if k == 0 and part.strip():
                out[-1][1].append(piece)
            elif k:
                out.append((H2.match(part).group(1), [piece]))
    return out


# ---- learning time -----------------------------------------------------------------------------------

WORDS_PER_MINUTE = 180    # reading prose
MINUTES_PER_CODE_CELL = 1.5  # read the code, run it, look at what it printed
MINUTES_PER_EXERCISE = 5  # think, write, run, fix once


class LearningTime(NamedTuple):
    main: int        # minutes: title to Summary, and What changed since the blog
    exercises: int
    deep_dives: int  # the optional '## Deep dive: ...' sections
    deep_dive_topics: list[str]


def _minutes(cells, is_setup_cell) -> float:
    words = sum(len(_source(c).split()) for c in cells if c.get("cell_type") == "markdown")
    code = [c for c in cells if c.get("cell_type") == "code" and not is_setup_cell(c)]
    exercises = sum(is_exercise(c) for c in code)
    return words / WORDS_PER_MINUTE + MINUTES_PER_EXERCISE * exercises + MINUTES_PER_CODE_CELL * (len(code) - exercises)


def _round5(minutes: float) -> int:
    return 0 if minutes == 0 else max(5, 5 * math.ceil(minutes / 5 - 0.2))  # to the nearest 5, at least 5


def learning_minutes(nb, is_setup_cell) -> LearningTime:
    """Minutes a learner needs, estimated from the content: prose at WORDS_PER_MINUTE, each code cell
    MINUTES_PER_CODE_CELL (the setup cell not counted), each exercise MINUTES_PER_EXERCISE (one at the end of a
    deep dive counts in the deep dive); each part rounded to 5 minutes. The main path counts What changed since
    the blog, not Further reading."""
    main: list = []
    exercises: list = []
    deep: list = []
    topics = []
    for heading, cells in segments(nb):
        if heading == "Exercises":
            exercises += cells
        elif heading.startswith(DEEP_DIVE):
            deep += cells
            topics.append(heading[len(DEEP_DIVE):])
        elif heading != "Further reading":
            main += cells
    return LearningTime(_round5(_minutes(main, is_setup_cell)), _round5(_minutes(exercises, is_setup_cell)),
                        _round5(_minutes(deep, is_setup_cell)), topics)


def learning_text(t: LearningTime) -> str:
    """``~25 min main path + 20 min exercises + 15 min deep dives (optional)``."""
    text = f"~{t.main} min main path + {t.exercises} min exercises"
    return text + (f" + {t.deep_dives} min deep dives (optional)" if t.deep_dives else "")


def course_map_text(t: LearningTime) -> str:
    """The README course map's learning-time cell: ``~25 min + 20 min exercises; deep dives (optional) ...``."""
    text = f"~{t.main} min + {t.exercises} min exercises"
    if t.deep_dives:
        text += f"; *deep dives (optional), ~{t.deep_dives} min: {', '.join(t.deep_dive_topics)}*"
    return text


def with_course_map_times(readme: str, times: dict[str, LearningTime]) -> str:
    """README text whose course-map column "learning time" holds ``times`` (notebook number -> time); the column
    is added after "what you learn" where the table lacks it."""
    lines = readme.split("\n")
    header = next((i for i, line in enumerate(lines) if line.startswith("| # |")), None)
    if header is None:
        return readme
    end = next((i for i in range(header, len(lines)) if not lines[i].startswith("|")), len(lines))
    names = [c.strip() for c in lines[header].split("|")]
    if "learning time" not in names:
        if "what you learn" not in names:
            return readme
        at = names.index("what you learn") + 1
        for i in range(header, end):
            cells = lines[i].split("|")
            cells.insert(at, " learning time " if i == header else "---" if i == header + 1 else " ")
            lines[i] = "|".join(cells)
        names = [c.strip() for c in lines[header].split("|")]
    col = names.index("learning time")
    for i in range(header + 2, end):
        m = re.match(r"^\| (\d\d) \|", lines[i])
        if m and m.group(1) in times:
            cells = lines[i].split("|")
            cells[col] = f" {course_map_text(times[m.group(1)])} "
            lines[i] = "|".join(cells)
    return "\n".join(lines)


TIME_LINE = re.compile(r"^\*\*Time:\*\* (?:learning ~[^·\n]*\(estimate\) · )?", re.M)


def with_learning_time(title: str, t: LearningTime | None) -> str:
    """The title cell's text with its ``**Time:**`` line opening with the learning time (None: without it)."""
    new = "**Time:** " + (f"learning {learning_text(t)} (estimate) · " if t else "")
    return TIME_LINE.sub(new, title, count=1)


# ---- slides ---------------------------------------------------------------------------------------------


def slides(nb, is_setup_cell) -> object:
    """The main path (title to Summary) as a deck: each H2 section a slide, its other cells sub-slides below it;
    the setup cell, the exercises and everything after them left out."""
    deck = copy.deepcopy(nb)
    deck.cells = []
    for heading, cells in segments(nb):
        if heading == "Exercises":
            break
        for k, cell in enumerate(cells):
            if is_setup_cell(cell):
                continue
            cell = copy.deepcopy(cell)
            kind = "slide" if k == 0 else "subslide" if cell.get("cell_type") == "markdown" else "-"
            cell.metadata["slideshow"] = {"slide_type": kind}
            deck.cells.append(cell)
    return deck
