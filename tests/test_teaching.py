"""scripts/teaching.py through scripts/notebooks.py: exercises and their student copies, the structure of a
notebook, the learning-time estimate, and the slides (a deck shows the main path, not the deep dives)."""

from __future__ import annotations

import sys

import nbformat
import pytest

tools = sys.modules["_notebook_tools"]  # loaded by conftest.py
teaching = tools.teaching

BRIEF_EXAMPLE = '''# your answer
answer = "codellama/CodeLlama-34b-Instruct-hf"
# check
assert answer == cc.resolve_model("34b", task="chat")'''


def test_student_copy_of_the_convention_example():
    assert teaching.student_source(BRIEF_EXAMPLE) == '''answer = ...  # your answer
# check
assert answer is not ..., "not solved yet: replace the ... with your answer"
assert answer == cc.resolve_model("34b", task="chat")'''


def test_given_code_stays_and_every_assigned_name_gets_a_placeholder():
    source = '''v = cc.get_variant("13b")  # given
# your answer
import math as m
a, (b, *c) = 1, (2, 3)
total: int = 0
total += a


def helper(x):
    inner = x
    return inner


# check
assert helper(a) == 1'''
    assert teaching.student_source(source) == '''v = cc.get_variant("13b")  # given
m = ...  # your answer
a = ...  # your answer
b = ...  # your answer
c = ...  # your answer
total = ...  # your answer
helper = ...  # your answer: def helper(x)
# check
assert all(v is not ... for v in (m, a, b, c, total, helper)), "not solved yet: replace each ... with your answer"
assert helper(a) == 1'''


def test_an_indented_exercise_keeps_its_block():
    source = '''with open(__file__) as f:
    # your answer
    text = f.read()
    # check
    assert text'''
    student = teaching.student_source(source)
    assert student.splitlines()[1:3] == ["    text = ...  # your answer", "    # check"]
    compile(student, "<student>", "exec")


@pytest.mark.parametrize("source, says", [
    ("answer = 1\nassert answer == 1", "needs one '# your answer' line"),
    ("# check\nassert x\n# your answer\nx = 1", "needs one '# your answer' line"),
    ("# your answer\nprint(1)\n# check\nassert True", "assigns no name"),
    ("# your answer\nx = 1\n# check\nprint(x)", "has no assert"),
    ("if True:\n    # your answer\n    x = 1\n# check\nassert x", "indented alike"),
    ("# your answer\nx = (1\n# check\nassert x", "not valid Python on its own"),
])
def test_a_cell_off_the_convention_says_what_is_wrong(source, says):
    with pytest.raises(teaching.ExerciseError, match=None) as exc:
        teaching.parse_exercise(source)
    assert says in str(exc.value)


def test_checks_that_would_show_the_expected_answer_are_caught():
    leaky = teaching.parse_exercise('''# your answer
answer = ("13b", "4bit")
# check
fitting = [("7b", "4bit"), ("13b", "4bit")]
assert answer == fitting[-1], fitting
print(fitting)
print(f"{answer} ok")
assert answer, "plain text is fine"''')
    problems = teaching.check_leaks(leaky)
    assert len(problems) == 2, problems
    assert "assert message may be plain text only" in problems[0] and "prints ['fitting']" in problems[1]


# ---- notebooks built here ---------------------------------------------------------------------------------

def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    for kind, source, *tags in cells:
        new = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        nb.cells.append(new(source))
        if tags:
            nb.cells[-1].metadata["tags"] = tags
    return nb


def _words(n: int) -> str:
    return " ".join(["word"] * n)


LESSON = _notebook(
    ("md", "# 09 · A lesson\n\n**Time:** CPU/nano < 1 min · **Hardware tier:** CPU/nano\n\n## What you'll learn\n- x"),
    ("code", tools.setup_cell("09_a_lesson.ipynb")),
    ("md", "## 1. The first idea\n" + _words(880)),  # with the title: 900 words = 5 min
    *[("code", f"x{i} = {i}") for i in range(10)],     # 10 code cells = 15 min
    ("md", "## Summary\n- short\n\n## Exercises\n**1.** Do it."),
    ("code", BRIEF_EXAMPLE, "exercise"),
    ("code", BRIEF_EXAMPLE, "exercise"),
    ("md", "## Deep dive: the inner workings\n" + _words(1800)),  # 10 min + 2 code cells = 3 min
    ("code", "deep = 1"),
    ("code", "deeper = 2"),
    ("code", BRIEF_EXAMPLE, "exercise"),  # an exercise on the deep dive's material: 5 min
    ("md", "## What changed since the blog\n- nothing"),
    ("md", "## Further reading\n" + _words(5000)),  # not counted
)


def test_learning_time_from_words_code_cells_and_exercises():
    t = tools.learning_time(LESSON)
    # main: 900 + a few words (5 min) + 10 code cells (15 min) = ~20 min; exercises: 2 x 5 min; deep dive:
    # 1,800 words (10 min) + 2 code cells (3 min) + 1 exercise (5 min) = 18 -> 20 min
    assert (t.main, t.exercises, t.deep_dives, t.deep_dive_topics) == (20, 10, 20, ["the inner workings"])
    assert teaching.learning_text(t) == "~20 min main path + 10 min exercises + 20 min deep dives (optional)"


def test_sync_writes_the_learning_time_into_the_time_line_and_again_changes_nothing():
    nb = tools.clean(nbformat.from_dict(LESSON), "09_a_lesson.ipynb")
    title = nb.cells[0].source
    assert ("**Time:** learning ~20 min main path + 10 min exercises + 20 min deep dives (optional) (estimate) · "
            "CPU/nano < 1 min · **Hardware tier:** CPU/nano") in title
    assert tools.clean(nbformat.from_dict(nb), "09_a_lesson.ipynb").cells[0].source == title


def test_course_map_column_gets_each_notebooks_time():
    readme = ("| # | notebook | learning time | CPU/nano |\n|---|---|---|---|\n"
              "| 09 | [A lesson](notebooks/09_a_lesson.ipynb) | old | ~10 s |\n\nafter")
    new = teaching.with_course_map_times(readme, {"09": tools.learning_time(LESSON)})
    assert new.splitlines()[2] == ("| 09 | [A lesson](notebooks/09_a_lesson.ipynb) | ~20 min + 10 min exercises; "
                                   "*deep dives (optional), ~20 min: the inner workings* | ~10 s |")
    assert new.endswith("\n\nafter")
    without = ("| # | notebook | what you learn | CPU/nano |\n|---|---|---|---|\n"
               "| 09 | [A lesson](notebooks/09_a_lesson.ipynb) | lessons | ~10 s |\n")
    added = teaching.with_course_map_times(without, {"09": tools.learning_time(LESSON)}).splitlines()  # a new column
    assert added[0] == "| # | notebook | what you learn | learning time | CPU/nano |"
    assert added[1] == "|---|---|---|---|---|"
    assert added[2].startswith("| 09 | [A lesson](notebooks/09_a_lesson.ipynb) | lessons | ~20 min + 10 min exercises;")


def test_structure_main_path_length_and_where_deep_dives_go():
    assert teaching.structure_problems(LESSON) == []
    long = nbformat.from_dict(LESSON)
    long.cells[3:3] = [nbformat.v4.new_code_cell("pass") for _ in range(20)]
    misplaced = nbformat.from_dict(LESSON)
    misplaced.cells.insert(2, nbformat.v4.new_markdown_cell("## Deep dive: too early"))
    misplaced.cells.insert(3, nbformat.v4.new_markdown_cell("## Deep Dive - badly named"))
    misplaced.cells.insert(4, nbformat.v4.new_code_cell(BRIEF_EXAMPLE, metadata={"tags": ["exercise"]}))
    [too_long] = teaching.structure_problems(long)
    assert "has 33 cells, more than 25" in too_long
    early, named, exercise = teaching.structure_problems(misplaced)
    assert "'## Deep dive: too early' must come after '## Exercises'" in early
    assert "write the heading as '## Deep dive: <topic>'" in named
    assert exercise.startswith("cell 4: an exercise belongs under '## Exercises'")


def test_student_notebook_replaces_solutions_and_clears_their_outputs():
    nb = nbformat.from_dict(LESSON)
    nb.cells[14].outputs = [nbformat.v4.new_output("stream", text="codellama/CodeLlama-34b-Instruct-hf\n")]
    student = teaching.student_notebook(nb)
    assert student.cells[14].outputs == [] and student.cells[14].source.startswith("answer = ...")
    assert nb.cells[14].outputs  # the teacher's notebook is left as it was
    assert teaching.solution_leaks(nb, student) == []
    assert teaching.solution_leaks(nb, nb) == ['answer = "codellama/CodeLlama-34b-Instruct-hf"']


def test_run_problems_accepts_only_the_not_solved_failure():
    nb = teaching.student_notebook(nbformat.from_dict(LESSON))
    error = lambda name, value: nbformat.v4.new_output("error", ename=name, evalue=value, traceback=[])  # noqa: E731
    for i in (14, 15, 19):  # the two exercises, and the one in the deep dive
        nb.cells[i].outputs = [error("AssertionError", "not solved yet: replace the ... with your answer")]
    assert teaching.run_problems(nb) == []
    nb.cells[15].outputs = [error("NameError", "name 'cc' is not defined")]
    nb.cells[18].outputs = [error("ValueError", "boom")]
    assert teaching.run_problems(nb) == [
        "cell 15 (exercise): expected only AssertionError 'not solved yet...', got [\"NameError: name 'cc' is not defined\"]",
        "cell 18: ValueError: boom"]


# ---- slides ---------------------------------------------------------------------------------------------------

def test_a_deck_shows_the_main_path_and_not_the_exercises_or_deep_dives(tmp_path):
    deck = tools.write_slides(nbformat.from_dict(LESSON), "09_a_lesson.ipynb", tmp_path).read_text()
    for shown in ("A lesson", "What you'll learn", "The first idea", "Summary", ">x9<"):
        assert shown in deck, shown
    for hidden in ("Exercises", "Deep dive", "inner workings", "deeper", "What changed", "Further reading",
                   tools.SETUP_MARKER):
        assert hidden not in deck, hidden
    assert deck.count("<section") >= 4


def test_the_deck_of_a_course_notebook_has_its_numbered_sections(tmp_path):
    path = tools.notebook_paths()[0]
    nb = tools.read(path)
    deck = tools.write_slides(nb, path.name, tmp_path).read_text()
    main = [h for c in nb.cells[:next(i for i, c in enumerate(nb.cells) if "Summary" in teaching.headings(c))]
            for h in teaching.headings(c)]
    assert main and all(h[:3] in deck for h in main if h[0].isdigit()), main
    assert 'id="Exercises"' not in deck and 'id="Further-reading"' not in deck
