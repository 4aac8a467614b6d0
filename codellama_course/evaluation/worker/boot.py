"""Start one part of the worker from text: ``python -I [-S] -c <this file> <parts> <role> <args...>``.

The sandbox starts the worker from source text, not from a path: the view inside bubblewrap /
unshare only has to contain the interpreter and ``sys.path``, wherever this package lives, and
``-I`` keeps the host's environment and user site-packages out. ``<parts>`` is the JSON object
:mod:`.parts` builds (every file of the worker folder, ``"codec.py"`` or ``"js/judge.js"``, to its
text). The Python files become the package ``sandbox_worker`` through a meta-path importer, so the
parts import each other as they do on the host (relative imports), and the role names the module
whose ``run(args)`` takes over: the worker's main loop, the strict-mode zygote, or the candidate
interpreter the worker starts when no zygote can. This file runs as ``__main__``: it imports no
part of the package itself and nothing outside the standard library.
"""

import importlib
import importlib.util
import json
import sys

PACKAGE = "sandbox_worker"
ROLES = {"worker": "main", "zygote": "zygote", "candidate": "candidate"}


class PartsImporter:
    """Finds and loads ``sandbox_worker`` and its modules from the parts' text."""

    def __init__(self, parts):
        self.parts = parts

    def _file(self, name):
        if name == PACKAGE:
            return "__init__.py"
        if name.startswith(PACKAGE + "."):
            return name[len(PACKAGE) + 1:].replace(".", "/") + ".py"
        return None

    def find_spec(self, name, path=None, target=None):
        file = self._file(name)
        if file is None or file not in self.parts:
            return None
        return importlib.util.spec_from_loader(name, self, origin=f"{PACKAGE}/{file}", is_package=name == PACKAGE)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        spec = module.__spec__
        code = compile(self.parts[self._file(spec.name)], spec.origin, "exec", dont_inherit=True)
        exec(code, module.__dict__)


def run(argv):
    text, role, args = argv[0], argv[1], argv[2:]
    parts = json.loads(text)
    sys.meta_path.insert(0, PartsImporter(parts))
    importlib.import_module(f"{PACKAGE}.parts").install(parts, text)
    return importlib.import_module(f"{PACKAGE}.{ROLES[role]}").run(args)


if __name__ == "__main__":
    try:
        run(sys.argv[1:])
    except BaseException:
        sys.stderr = sys.__stderr__  # (sys.stderr may be the samples' swallowing stream: show the worker's error)
        raise
