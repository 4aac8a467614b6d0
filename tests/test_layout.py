"""The package's shape: imports go one way, the core never needs the lesson tools, modules stay small.

Read from the source (the AST), every import statement counts, including those inside functions: an import
moved into a function to dodge a cycle is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "codellama_course"
PACKAGE = PACKAGE_DIR.name
MAX_MODULE_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _resolve(name: str) -> str:
    """The module an import statement loads: ``pkg.mod.attr`` -> ``pkg.mod`` when attr is not a module."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from . import prompts` imports the module prompts; `from .x import name` imports x
            targets = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
            targets = [t for t in targets if t == prefix or t in MODULES] or [prefix]
        else:
            continue
        found |= {_resolve(t) for t in targets if t == PACKAGE or t.startswith(PACKAGE + ".")}
    found.discard(module)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reader_sees_imports_inside_functions_and_relative_imports():
    # the reader itself must be able to fail: a known lazy import and a known relative one
    assert f"{PACKAGE}.evaluation.passk" in GRAPH[f"{PACKAGE}.evaluation.charts"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles (every import counts, also those inside functions):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_core_never_imports_the_lesson_tools():
    lessons = f"{PACKAGE}.lessons"
    offenders = {
        module: sorted(t for t in targets if t == lessons or t.startswith(lessons + "."))
        for module, targets in GRAPH.items()
        if not (module == lessons or module.startswith(lessons + "."))
    }
    offenders = {m: t for m, t in offenders.items() if t}
    assert not offenders, f"core modules importing codellama_course.lessons: {offenders}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines (limit {MAX_MODULE_LINES}): split it by idea"
