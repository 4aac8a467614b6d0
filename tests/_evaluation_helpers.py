"""Shared by the evaluation tests: one sandbox pool for the whole session (workers start once)."""

from __future__ import annotations

import atexit
import functools
import os

from codellama_course.evaluation import Sandbox


@functools.lru_cache(maxsize=None)
def shared_sandbox() -> Sandbox:
    box = Sandbox(workers=2, timeout=3.0, quiet=True).start()
    atexit.register(box.close)
    return box


def _processes() -> list[tuple[int, int, int, str]]:
    """(pid, parent pid, real uid, command line) of every process, from /proc (no `ps` needed)."""
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            uid, ppid = int(fields["Uid"].split()[0]), int(fields["PPid"])
        except (OSError, KeyError, ValueError):
            continue
        rows.append((int(entry), ppid, uid, cmd))
    return rows


def leftover(marker: str) -> list[str]:
    """Processes on this machine whose command line contains ``marker``."""
    me = os.getpid()
    return [f"{pid} {cmd}" for pid, _, _, cmd in _processes() if marker in cmd and pid != me]


def sample_uids(box: Sandbox) -> set[int]:
    return {h["uid"] for h in box.info if h.get("uid") is not None}


def processes_of(uids: set[int]) -> list[str]:
    """Live processes of ``uids`` that this test run is answerable for: those started below this
    process, and orphans adopted by init (escaped from whichever sandbox started them). Another
    evaluation running on the same machine at the same time has live samples of its own; they
    descend from that run, not from this one, so they do not count."""
    rows = _processes()
    parent = {pid: ppid for pid, ppid, _, _ in rows}

    def ours(pid: int) -> bool:
        seen = set()
        while pid > 1 and pid not in seen:
            if pid == os.getpid():
                return True
            seen.add(pid)
            pid = parent.get(pid, 0)
        return False

    return [f"{uid} {pid} {cmd}" for pid, ppid, uid, cmd in rows
            if uid in uids and (ppid == 1 or ours(pid))]


ISOLATION = os.environ.get("CODELLAMA_EVAL_ISOLATION", "auto")


#: The isolations the sandbox tests run under: "unshare-no-pidns" is unshare's view without a PID
#: namespace, what ``auto`` picks where /proc cannot be mounted (Colab).
NAMESPACED = ("bwrap", "unshare", "unshare-no-pidns")


def sandbox_under(kind: str, **options) -> Sandbox:
    """A Sandbox with isolation ``kind`` (one of NAMESPACED or "none"), or a pytest skip that says why
    it cannot run here."""
    import pytest

    from codellama_course.evaluation.isolation import is_root, probe

    base = "unshare" if kind.startswith("unshare") else kind
    if base != "none":
        found = probe(base)
        if not found.ok:
            pytest.skip(f"{base} does not work here: {found.why}")
    if kind == "unshare-no-pidns":
        if not is_root():
            pytest.skip("unshare without a PID namespace needs root (samples under their own uid)")
        options["pid_namespace"] = False
    elif kind == "unshare" and not probe("unshare").pid_namespace:
        pytest.skip(f"no PID namespace here: {probe('unshare').why}")
    return Sandbox(isolation=base, **options)


def worker_pid(box: Sandbox, index: int = 0) -> int:
    """The host pid of a worker's Python process (below bwrap/unshare, or the process itself)."""
    top = box._workers[index].proc.pid
    rows = _processes()
    children: dict[int, list[int]] = {}
    for pid, ppid, _, _ in rows:
        children.setdefault(ppid, []).append(pid)
    cmd = {pid: c for pid, _, _, c in rows}
    todo, seen = [top], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += children.get(pid, [])
    workers = [p for p in seen if os.path.basename(cmd.get(p, "").split(" ", 1)[0]).startswith("python")
               and " -I -c " in cmd[p]]  # the worker, or below it its strict-mode zygote
    assert workers, [cmd.get(p, "?")[:80] for p in seen]
    return min(workers, key=seen.index)
