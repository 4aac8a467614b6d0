"""Isolation: which kernel containment works on this machine, the command that builds it, and what
each level contains.

Both namespaced levels give a worker the same view: the host's root filesystem read-only, a private
tmpfs on ``/tmp`` (the only writable place: the scratch directory), ``$HOME``, ``/root`` and ``/home``
replaced by empty tmpfs, no network, own IPC/UTS namespaces and, where ``/proc`` can be mounted, its
own PID namespace with a fresh ``/proc``.

* ``"bwrap"``   -- bubblewrap builds the view.
* ``"unshare"`` -- util-linux builds it: ``unshare`` makes the namespaces, ``mount`` the view (a short
  shell script, :func:`unshare_argv`), ``setpriv`` drops capabilities and sets ``no_new_privs``.
* ``"none"``    -- plain processes with rlimits only: only when asked for by name.
* ``"auto"``    -- the first of ``bwrap``, ``unshare`` that works here (each is probed by running it);
  where neither does, :class:`SandboxUnavailable` says what is missing and how to get it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Sequence

__all__ = ["SandboxUnavailable", "detect_isolation", "probe", "containment", "containment_table", "SCRATCH"]

#: The private tmpfs a namespaced worker gets: its scratch space, the only writable place.
SCRATCH = "/tmp"
#: What the worker keeps of root's capabilities (signal and switch to the samples' uids, own their
#: scratch folders); everything else is dropped from the bounding set.
WORKER_CAPS = ("CAP_KILL", "CAP_SETUID", "CAP_SETGID", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_CHOWN")
ISOLATIONS = ("bwrap", "unshare", "none")


class SandboxUnavailable(RuntimeError):
    """No namespace isolation works here, and ``isolation="none"`` was not asked for.

    Taught in: notebook 06 §2, notebook 06 deep dive "running untrusted code".
    """


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def clean_env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}


def under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def hidden_dirs(hide: Sequence[str]) -> list[str]:
    """The folders of ``hide`` that get their own empty tmpfs: those that exist, outside ``/tmp``
    (hidden anyway), outermost only."""
    dirs = [h for h in dict.fromkeys(os.path.normpath(h) for h in hide if h)
            if h != "/" and os.path.isdir(h) and not under(h, SCRATCH)]
    return [h for h in dirs if not any(h != o and under(h, o) for o in dirs)]


def remounts(hide: Sequence[str], keep: Sequence[str]) -> list[str]:
    """The paths of ``keep`` that a tmpfs hides (under /tmp or ``hide``), outermost only: the ones
    that must be mounted back, read-only, for the worker to start."""
    masked = [SCRATCH] + hidden_dirs(hide)
    keep = sorted(os.path.normpath(p) for p in set(keep) if p and os.path.isabs(p) and os.path.exists(p))
    # re-mounting /tmp (or a folder above it) would undo the private /tmp
    keep = [p for p in keep if any(under(p, m) for m in masked) and not under(SCRATCH, p)]
    return [p for p in keep if not any(p != q and under(p, q) for q in keep)]


def reachable(path: str, hide: Sequence[str] = (), keep: Sequence[str] = ()) -> bool:
    """Can any uid reach ``path`` inside the view (o+x on every directory on the way)? Folders the
    view makes itself (the tmpfs and the parents of what is mounted back) are 0755."""
    path = os.path.realpath(path)
    backs = remounts(hide, keep) if hide or keep else []
    stop = next((b for b in backs if under(path, b)), None)
    while True:
        try:
            if not os.stat(path).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        if path == stop:  # above it: folders the view made (0755), then the host's again
            mask = next(m for m in [SCRATCH] + hidden_dirs(hide) if under(path, m))
            path = os.path.dirname(mask)
            stop = None
            continue
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


# ----------------------------------------------------------------------------- bubblewrap
def bwrap_argv(hide: Sequence[str] = (), keep: Sequence[str] = ()) -> list[str]:
    """bubblewrap's command line: read-only ``/``, a private ``/tmp``, and ``hide`` (folders that
    exist) replaced by empty tmpfs. ``keep`` are host paths the worker needs (interpreter, venv,
    ``sys.path``) that lie under ``/tmp`` or ``hide``: they are mounted back read-only, at the same
    place, *after* the tmpfs that hides them (bubblewrap applies its arguments in order)."""
    argv = [shutil.which("bwrap"), "--ro-bind", "/", "/", "--tmpfs", SCRATCH, "--dev", "/dev", "--proc", "/proc"]
    hide = hidden_dirs(hide)
    for path in hide:
        argv += ["--tmpfs", path]
    masked = [SCRATCH] + hide
    made: set[str] = set(masked)
    for path in remounts(hide, keep):
        # bwrap creates missing parents 0700 (root's, in the tmpfs): make them traversable for the
        # samples' uid, and make them before the mount, so they are ours and not the host's
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/" + "/".join(parts[:i])
            if parent not in made and any(parent.startswith(m.rstrip("/") + "/") for m in masked):
                argv += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        argv += ["--ro-bind", path, path]
    if is_root():
        # no user namespace: we want real uids, so samples can run as their own uid
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        argv += ["--cap-drop", "ALL"]
        for cap in WORKER_CAPS:
            argv += ["--cap-add", cap]
    else:
        argv += ["--unshare-all"]
    argv += ["--die-with-parent", "--new-session", "--chdir", "/tmp", "--"]
    return argv


# ----------------------------------------------------------------------------- unshare + mount + setpriv
#: Mount flags a read-only remount must repeat: in a user namespace the kernel refuses to clear
#: the ones the parent namespace set ("locked"), and ``mount -o remount`` would clear them.
_KEPT_FLAGS = {"nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "strictatime", "nosymfollow"}


def host_mounts() -> list[tuple[str, tuple[str, ...]]]:
    """(mount point, flags to keep) of every mount this process sees, from /proc/self/mountinfo."""
    out = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 6:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        out.append((point, tuple(f for f in fields[5].split(",") if f in _KEPT_FLAGS)))
    return out


def _read_only(masks: Sequence[str], backs: Sequence[str], pid_namespace: bool) -> dict[str, tuple[str, ...]]:
    """Every mount the view shows, but the private /tmp: mount point -> flags of its remount."""
    mounts = host_mounts()
    out: dict[str, tuple[str, ...]] = {}
    for point, flags in mounts:
        if pid_namespace and under(point, "/proc"):
            continue  # hidden by the fresh /proc
        if any(under(point, m) for m in masks) and not any(under(point, b) for b in backs):
            continue  # hidden by a tmpfs
        if os.path.lexists(point):
            out[point] = flags
    for back in backs:  # a bind mount of a folder: the flags of the mount it lies on
        holder = max((p for p, _ in mounts if under(back, p)), key=len, default="/")
        out.setdefault(back, dict(mounts).get(holder, ()))
    for mask in masks[1:]:
        out[mask] = ()
    if pid_namespace:
        out["/proc"] = ("nosuid", "nodev", "noexec")
    return out


def _view_script(hide: Sequence[str], keep: Sequence[str], stage: str, pid_namespace: bool) -> str:
    """The shell script that builds bubblewrap's view with util-linux ``mount``, then runs ``"$@"``.

    Written here because no tool makes this view on its own: ``unshare`` makes the namespaces, and
    ``mount`` (util-linux < 2.39) has no recursive read-only bind, so every mount is remounted
    read-only one by one -- as bubblewrap itself does. The new tmpfs are prepared under ``stage``
    (an empty folder of the evaluator's), the paths to keep are mounted back into them, and only
    then are they moved over ``/tmp`` and the hidden folders."""
    q = shlex.quote
    masks = [SCRATCH] + hidden_dirs(hide)
    backs = remounts(hide, keep)
    lines = ["set -e", "umask 022", f"mount -n -t tmpfs -o mode=0700 sandbox-stage {q(stage)}"]
    for i, _ in enumerate(masks):
        lines += [f"mkdir {q(f'{stage}/{i}')}", f"mount -n -t tmpfs -o mode=0755 sandbox {q(f'{stage}/{i}')}"]
    for path in backs:
        i = next(i for i, m in enumerate(masks) if under(path, m))
        target = f"{stage}/{i}/{os.path.relpath(path, masks[i])}"
        if os.path.isdir(path):
            lines.append(f"mkdir -p {q(target)}")
        else:
            lines += [f"mkdir -p {q(os.path.dirname(target))}", f"touch {q(target)}"]
        lines.append(f"mount -n --rbind {q(path)} {q(target)}")
    # the tmpfs that covers the stage itself moves last
    for i in sorted(range(len(masks)), key=lambda i: under(stage, masks[i])):
        lines.append(f"mount -n --move {q(f'{stage}/{i}')} {q(masks[i])}")
    lines.append(f"umount -n {q(stage)} 2>/dev/null || true")  # (already hidden when it lies under /tmp)
    for point, flags in _read_only(masks, backs, pid_namespace).items():
        lines.append(f"mount -n -o {','.join(('remount', 'bind', 'ro') + flags)} {q(point)}")
    # "$@" is not the last command, so the shell forks it and stays PID 1 of the namespace: the
    # worker is then an ordinary process that a SIGKILL from inside the namespace does kill (init
    # ignores it), and the namespace ends when the worker does.
    lines += ['"$@"', "exit $?"]
    return "\n".join(lines)


def unshare_argv(hide: Sequence[str] = (), keep: Sequence[str] = (), *, stage: str,
                 pid_namespace: bool = True) -> list[str]:
    """util-linux's command line for the view (see :func:`_view_script`); the worker's command follows."""
    argv = [shutil.which("unshare")]
    if not is_root():
        argv += ["--user", "--map-root-user"]
    argv += ["--mount", "--net", "--ipc", "--uts", "--fork", "--kill-child"]
    if pid_namespace:
        argv += ["--pid", "--mount-proc"]
    caps = ",".join(["-all"] + ["+" + c[4:].lower() for c in WORKER_CAPS]) if is_root() else "-all"
    script = _view_script(hide, keep, stage, pid_namespace)
    return argv + ["--", "/bin/sh", "-c", script, "sandbox-view",
                   shutil.which("setpriv") or "setpriv", "--no-new-privs", f"--bounding-set={caps}", "--"]


# ----------------------------------------------------------------------------- probing
@dataclass(frozen=True)
class Probe:
    """What running an isolation here showed: ``ok``, else ``why`` not; ``pid_namespace`` (unshare:
    False where ``/proc`` cannot be mounted, as on runtimes that forbid it)."""

    ok: bool
    why: str = ""
    pid_namespace: bool = True


_PROBED: dict[str, Probe] = {}
_MISSING_TOOL = {
    "bwrap": "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)",
    "unshare": "util-linux's unshare, mount and setpriv are needed (Debian/Ubuntu: apt-get install util-linux mount)",
}


def _run(argv: list[str]) -> str:
    """'' when ``argv`` + ``/bin/true`` succeeds, else its last error line."""
    try:
        r = subprocess.run(argv + ["/bin/true"], env=clean_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    if r.returncode == 0:
        return ""
    lines = [line for line in r.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[0].strip() if lines else f"exit status {r.returncode}"


def _probe_unshare(pid_namespace: bool) -> str:
    stage = tempfile.mkdtemp(prefix="codellama-eval-probe-")
    try:
        return _run(unshare_argv(stage=stage, pid_namespace=pid_namespace))
    finally:
        os.rmdir(stage)


def probe(kind: str) -> Probe:
    """Run ``kind`` (``bwrap`` or ``unshare``) here once and remember what happened."""
    if kind in _PROBED:
        return _PROBED[kind]
    if not sys.platform.startswith("linux"):
        result = Probe(False, f"namespaces are a Linux feature (this is {sys.platform})")
    elif kind == "bwrap":
        why = _run(bwrap_argv()) if shutil.which("bwrap") else _MISSING_TOOL["bwrap"]
        result = Probe(not why, why)
    elif not all(shutil.which(t) for t in ("unshare", "mount", "setpriv")):
        result = Probe(False, _MISSING_TOOL["unshare"])
    else:
        why = _probe_unshare(pid_namespace=True)
        result = Probe(not why, why)
        if why and is_root():
            # some container runtimes forbid mounting /proc (Colab since 2025): the same view
            # without a PID namespace, where samples run as their own uid (only as root)
            if not _probe_unshare(pid_namespace=False):
                result = Probe(True, f"no PID namespace: {why}", pid_namespace=False)
    _PROBED[kind] = result
    return result


def unavailable_message(kinds: Sequence[str]) -> str:
    lines = ["No sandbox for model-generated code works on this machine, so none was run:"]
    for kind in kinds:
        lines.append(f"  {kind}: {probe(kind).why}")
    if sys.platform.startswith("linux"):
        lines.append("Namespaces need root or unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; "
                     "Ubuntu >= 23.10: an AppArmor profile for bwrap); in a container, start it with the right to "
                     "create them (e.g. docker run --privileged).")
    else:
        lines.append("Run the evaluation in a Linux VM or container instead.")
    lines.append('To run the samples unconfined anyway (only on a machine you can afford to lose), ask for it: '
                 'isolation="none" (CLI: --isolation none).')
    return "\n".join(lines)


def detect_isolation(preferred: str = "auto") -> str:
    """The isolation to use: ``preferred`` if it works here, or for ``auto`` the strongest that works
    (``bwrap``, then ``unshare``). Raises :class:`SandboxUnavailable` rather than fall back to ``none``,
    which is only ever used when asked for by name.

    Taught in: notebook 06 §2.
    """
    if preferred not in ("auto",) + ISOLATIONS:
        raise ValueError(f"isolation must be auto, bwrap, unshare or none, not {preferred!r}")
    if preferred == "none":
        return "none"
    kinds = ["bwrap", "unshare"] if preferred == "auto" else [preferred]
    for kind in kinds:
        if probe(kind).ok:
            return kind
    raise SandboxUnavailable(unavailable_message(kinds))


# ----------------------------------------------------------------------------- what is contained
def containment(isolation: str, *, pid_namespace: bool = True, own_uid: bool = True) -> list[dict]:
    """One row per threat: ``threat``, ``contained`` (bool) and ``how``, for an isolation level, with
    or without a PID namespace, with samples under their own uid (as root) or the evaluator's."""
    ns = isolation in ("bwrap", "unshare")
    pidns = ns and pid_namespace
    rows = [
        ("write, delete or truncate host files", ns,
         "root filesystem read-only; the only writable place is a private /tmp (tmpfs)" if ns else
         "the filesystem is writable: a sample can change anything its uid may"),
        ("reach the network", ns, "own network namespace (loopback only)" if ns else "no network namespace"),
        ("leave processes behind", True,
         "own PID namespace: everything left is killed after each sample" if pidns else
         "session kill and a child-subreaper sweep after each sample (no PID namespace)"),
        ("kill the evaluator or other processes", pidns or own_uid,
         "they are outside the sample's PID namespace" if pidns else
         "samples run as their own uid" if own_uid else "samples run as the evaluator's uid and can signal it"),
        ("read secrets from the environment", pidns or own_uid,
         "environment cleared; other processes " + ("invisible (PID namespace)" if pidns else
                                                    "unreadable (other uid)" if own_uid else
                                                    "readable: /proc/<pid>/environ of the evaluator's uid")),
        ("fork and memory bombs", own_uid,
         "rlimits: address space, file size, open files, processes of the sample's own uid" if own_uid else
         "rlimits on address space, file size and open files, but NO process limit (shared uid)"),
        ("read the host's world-readable files", False, "the host's files are visible (read-only)"),
        ("use all CPU and memory", False, "rlimits per process, no cgroup per sandbox"),
    ]
    return [{"threat": t, "contained": c, "how": h} for t, c, h in rows]


def describe_isolation(isolation: str, *, pid_namespace: bool = True, own_uid: bool = True) -> str:
    what = {"bwrap": "bubblewrap", "unshare": "util-linux unshare + mount + setpriv",
            "none": "NONE: plain processes, asked for with isolation='none'"}[isolation]
    notes = []
    if isolation != "none":
        notes.append("namespaces: mount, network, IPC, UTS" + (", PID" if pid_namespace else " (no PID: /proc "
                                                                                            "cannot be mounted here)"))
    notes.append("samples run as their own uid" if own_uid else "samples run as the evaluator's uid")
    return f"isolation: {isolation} ({what}; {'; '.join(notes)})"


def containment_table(isolation: str, *, pid_namespace: bool = True, own_uid: bool = True) -> str:
    """:func:`containment` as a text table, under a line that names the isolation.

    Taught in: notebook 06 §2.
    """
    rows = containment(isolation, pid_namespace=pid_namespace, own_uid=own_uid)
    width = max(len(r["threat"]) for r in rows)
    lines = [describe_isolation(isolation, pid_namespace=pid_namespace, own_uid=own_uid),
             f"  {'threat':{width}}  contained  how"]
    for r in rows:
        lines.append(f"  {r['threat']:{width}}  {'yes' if r['contained'] else 'NO':9}  {r['how']}")
    return "\n".join(lines)
