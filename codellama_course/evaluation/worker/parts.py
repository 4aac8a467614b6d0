"""The worker's files as text, and the command line that starts one part of it.

On the host, :func:`command` reads this folder (``*.py`` and ``js/*.js``, shipped as package data)
once; inside the sandbox :mod:`.boot` has put the same text here with :func:`install`, so the worker
starts its zygote and candidate interpreters the way the evaluator started it, and
:func:`javascript` gives the node programs from ``js/``.
"""

import json
import sys

SOURCES = {}  # file name relative to this folder ("boot.py", "js/judge.js") -> text
TEXT = ""  # SOURCES as one JSON argument


def install(sources, text):
    """Hold the parts: what :mod:`.boot` received (inside the sandbox) or :func:`collect` read (on the
    host). Rebinds the names, never edits them in place: the evaluator's threads that start workers may
    be reading them."""
    global SOURCES, TEXT
    SOURCES, TEXT = dict(sources), text


def collect():
    """Read this folder's ``*.py`` and ``js/*.js`` files (on the host)."""
    from importlib import resources

    folder = resources.files(__package__)
    sources = {}
    for sub, entries in (("", folder.iterdir()), ("js/", (folder / "js").iterdir())):
        for entry in entries:
            if entry.is_file() and entry.name.endswith((".py", ".js")):
                sources[sub + entry.name] = entry.read_text(encoding="utf-8")
    return dict(sorted(sources.items()))


def command(role, *args, site=True):
    """``python -I [-S] -c <boot.py> <parts> <role> <args>``: a fresh interpreter running one part."""
    if not TEXT:
        sources = collect()
        install(sources, json.dumps(sources))
    sources, text = SOURCES, TEXT
    flags = ["-I"] if site else ["-I", "-S"]
    return [sys.executable, *flags, "-c", sources["boot.py"], text, role, *(str(a) for a in args)]


def javascript(*names):
    """The node program made of ``js/<name>`` files, joined in order."""
    return "".join(SOURCES["js/" + name] for name in names)
