"""What HumanEval-style code commonly imports, loaded before the worker (and the zygote) fork, so a
forked child starts warm.

Not ``shutil`` or ``subprocess`` (nor anything else that imports ``threading``) and not ``random``:
each registers a Python at-fork hook that every forked child runs (``threading`` ~0.3 ms,
``random``'s reseed ~0.15 ms per sample, together a sixth of the per-sample cost, while few samples
import them). The guard patches ``shutil`` / ``subprocess`` when a sample imports them.
"""

import bisect  # noqa: F401
import collections  # noqa: F401
import copy  # noqa: F401
import faulthandler  # noqa: F401  (the guard needs it)
import fractions  # noqa: F401
import functools  # noqa: F401
import hashlib  # noqa: F401
import heapq  # noqa: F401
import itertools  # noqa: F401
import math  # noqa: F401
import re  # noqa: F401
import string  # noqa: F401
import typing  # noqa: F401
