"""A command that works beside the test suite: started when collection ends (the ``background`` marker in
tests/conftest.py), its output in a log file, waited for by the tests that need its result."""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class BackgroundRun:
    """``command(folder)`` (argv) run in a child process in a fresh temporary folder, removed at exit."""

    def __init__(self, prefix: str, command, timeout_s: float) -> None:
        self.prefix, self.command, self.timeout_s = prefix, command, timeout_s
        self.proc: subprocess.Popen | None = None
        self.result: tuple[int | None, str] | None = None

    def start(self) -> None:
        if self.proc is not None:
            return
        self.dir = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.log = self.dir / "log.txt"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(self.command(self.dir), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        atexit.register(self._clean)

    def _clean(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def wait(self) -> tuple[int | None, str]:
        """(the exit status, None when it ran out of time; its output)."""
        if self.result is None:
            self.start()
            try:
                code = self.proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = None
            self.result = code, self.log.read_text(errors="replace")
        return self.result
