"""Project-wide pytest setup: the quiet, offline, one-thread environment every test and every
nbval kernel runs under (the kernels inherit this process's environment), without overriding a value
the user set. The values live in scripts/notebooks.py (QUIET_ENV, OFFLINE_ENV) so `pytest --nbval` and
`scripts/notebooks.py execute` agree."""

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _load_notebook_tools():
    spec = importlib.util.spec_from_file_location("_notebook_tools", ROOT / "scripts" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_notebook_tools"] = module
    spec.loader.exec_module(module)
    return module


_tools = _load_notebook_tools()
# Tests run offline (OFFLINE_ENV), quiet and on one thread; a value the user set wins.
for _key, _value in {**_tools.QUIET_ENV, **_tools.OFFLINE_ENV}.items():
    os.environ.setdefault(_key, _value)
# kernels started by nbval import the package from this checkout even when it is not installed
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)

try:  # one torch thread in the test process as well (env vars are read when torch starts)
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass
