"""Serving Code Llama behind an HTTP API on this machine (notebook 07).

:class:`LocalServer` starts ``transformers serve`` (transformers' own OpenAI-compatible server) on
loopback with a local model folder - the nano model by default - on a free port, waits for
``/health``, captures the server log and stops it cleanly (it is a context manager)::

    with LocalServer() as server:                      # nano, 127.0.0.1, a free port
        client = openai_client(server)                 # codellama_course.clients
        print(api_complete(client, "def fibonacci(n):"))

The client code (the ``openai`` client's completions, ``InferenceClient`` chat, :class:`~codellama_course.clients.Sampling`)
lives in :mod:`codellama_course.clients`: it works unchanged against this server and against vLLM, TGI and
Inference Endpoints.

What ``transformers serve`` answers (measured here, transformers 5.24, offline, local folder):
``GET /health``, ``GET /v1/models``, ``POST /v1/completions`` and ``POST /v1/chat/completions``
(both streaming too). It does **not** answer TGI's own routes (``POST /`` = ``/generate``,
``/generate_stream``), so ``InferenceClient.text_generation`` gets a 404 from it: that call is for
a TGI server or an Inference Endpoint (``codellama_course.lessons.RECIPES``).

Errors are specific and say what to do: :class:`PortInUseError`, :class:`ServerStartError` (with
the tail of the server log), :class:`ModelNotFoundError`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .clients import EndpointUnreachableError, ServingError, check_endpoint, is_loopback
from .hardware import hub_online
from .loading import download_notice, resolve_model
from .prompts import HUB_CHAT_TEMPLATE
from .registry import nano_dir

__all__ = [
    "LocalServer",
    "free_port",
    "port_in_use",
    "PortInUseError",
    "ServerStartError",
    "ModelNotFoundError",
]

LOOPBACK = "127.0.0.1"
_REMOVED_IN = "0.3.0"  # codellama_course.REMOVED_IN (the package root is not imported from here)


# ---------------------------------------------------------------------------------------------
# errors


class PortInUseError(ServingError, OSError):
    """The port asked for is already taken by another process.

    Taught in: notebook 07 §3.
    """


class ServerStartError(ServingError):
    """The server process exited, or did not answer ``/health`` in time. ``.log_tail`` holds its last lines.

    Taught in: notebook 07 §3.
    """

    def __init__(self, message: str, log_tail: str = ""):
        super().__init__(message + (f"\n--- last lines of the server log ---\n{log_tail}" if log_tail else ""))
        self.log_tail = log_tail


class ModelNotFoundError(ServingError, FileNotFoundError):
    """The model folder (or Hub id, offline) cannot be found.

    Taught in: notebook 07 §3.
    """


# ---------------------------------------------------------------------------------------------
# ports


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it).

    Taught in: notebook 07 §2.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something already listens on ``host:port`` (or the port cannot be bound).

    Binds with ``SO_REUSEADDR``, as uvicorn does, so connections of a stopped server that linger in
    TIME_WAIT do not count.

    Taught in: notebook 07 §2.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# the local server


_RUNNING: "weakref.WeakSet[LocalServer]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:  # no orphaned servers when the interpreter or the notebook kernel exits
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.stop()


def _resolve_model_folder(model: str | os.PathLike[str] | None) -> tuple[str, str]:
    """(what to pass to ``transformers serve``, a short label). Raises ModelNotFoundError."""
    name = resolve_model(None if model is None else str(model))
    if name == "nano":
        folder = nano_dir()
        if not (folder / "config.json").exists():
            raise ModelNotFoundError(f"The nano model is missing from {folder}: reinstall the package "
                                     "(pip install -e .) or train it (notebook 08).")
        return str(folder), "nano"
    path = Path(name).expanduser()
    looks_like_path = path.is_absolute() or name.startswith((".", "~")) or os.sep in name and path.exists()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"{path} is a folder but holds no config.json: not a transformers model folder "
                                     "(expected config.json, model.safetensors and the tokenizer files).")
        return str(path.resolve()), path.name
    if looks_like_path or name.count("/") > 1:
        raise ModelNotFoundError(f"Model folder {name!r} does not exist.")
    # a Hub id: fine online; offline it must be in the local cache
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_OFFLINE

    if HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(name, "config.json"), str):
        raise ModelNotFoundError(
            f"{name!r} is not a local folder and is not in the Hugging Face cache, and HF_HUB_OFFLINE=1 forbids "
            "downloading it. Pass a local model folder (nano: model=None), or go online.")
    return name, name


def _model_file(model_id: str, filename: str) -> Path | None:
    """A small file of a model folder or Hub repo (cache first, then the Hub when online); None if absent."""
    folder = Path(model_id)
    if folder.is_dir():
        return folder / filename if (folder / filename).is_file() else None
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    with contextlib.suppress(Exception):
        hit = try_to_load_from_cache(model_id, filename)
        if isinstance(hit, str):
            return Path(hit)
        if hit is None and hub_online():  # None: never looked up (a cached "absent" is another object)
            return Path(hf_hub_download(model_id, filename))
    return None


def _has_chat_template(model_id: str) -> bool:
    """Does the model's tokenizer bring a chat template (chat_template.jinja or in tokenizer_config.json)?"""
    if _model_file(model_id, "chat_template.jinja") is not None:
        return True
    cfg = _model_file(model_id, "tokenizer_config.json")
    if cfg is None:
        return False
    with contextlib.suppress(ValueError, OSError):
        return bool(json.loads(cfg.read_text(encoding="utf-8")).get("chat_template"))
    return False


def _tail(path: Path | None, lines: int) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def _last_error_line(log: str) -> str:
    """The last ``SomeError: message`` line of a log (the reason a Python process died)."""
    hits = re.findall(r"^\s*((?:[A-Za-z_][\w.]*)?(?:Error|Exception|Exit)\b:?.*)$", log, re.M)
    return hits[-1].strip() if hits else ""


class LocalServer:
    """``transformers serve`` on loopback with a local model, started and stopped from Python.

    >>> with LocalServer() as server:          # nano on 127.0.0.1:<free port>
    ...     server.url, server.model_id         # ('http://127.0.0.1:PORT', '/…/nano_model')

    Arguments:
        model: ``None``/``"nano"`` (the shipped nano model), a local model folder, or a Hub id (online, or cached).
        port: ``None`` picks a free port; a taken port raises :class:`PortInUseError`.
        host: only loopback addresses are allowed (``127.0.0.1``, ``::1``, ``localhost``): this server has no auth.
        chat_template: ``"auto"`` gives a model without a chat template (nano, Code Llama base) Code Llama
            Instruct's template so that ``/v1/chat/completions`` works; a template string; or ``None``.
        quantization: ``"bnb-4bit"``/``"bnb-8bit"`` (needs bitsandbytes, and a GPU in practice).
        continuous_batching: turn on transformers' continuous batching (paged attention).
        device, dtype: passed to ``transformers serve`` (``"cpu"``/``"auto"``/``"cuda:0"``; ``"auto"``/``"bfloat16"``...).
        startup_timeout: seconds to wait for ``/health``.
        log_path: where the server's stdout/stderr go (default: a temporary file); see :meth:`log_tail`.

    Taught in: notebook 07 §2.
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, *, port: int | None = None,
                 host: str = LOOPBACK, chat_template: str | None = "auto", quantization: str | None = None,
                 continuous_batching: bool = False, device: str = "cpu", dtype: str = "auto",
                 startup_timeout: float = 120.0, log_path: str | os.PathLike[str] | None = None,
                 extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None):
        if not is_loopback(host):
            raise ValueError(f"host={host!r}: LocalServer binds to loopback only (127.0.0.1, ::1, localhost). "
                             "A server reachable from the network needs authentication and TLS in front of it.")
        if quantization not in (None, "bnb-4bit", "bnb-8bit"):
            raise ValueError("quantization must be None, 'bnb-4bit' or 'bnb-8bit'")
        self.model_id, self.label = _resolve_model_folder(model)
        self.host = host
        self._requested_port = port
        self.port = port  # the port in use once started
        self.chat_template = self._chat_template(chat_template)
        self.quantization = quantization
        self.continuous_batching = continuous_batching
        self.device, self.dtype = device, dtype
        self.startup_timeout = float(startup_timeout)
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self._log_path = Path(log_path) if log_path is not None else None
        self._log_file = None
        self._proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    # -- configuration ---------------------------------------------------------------------------------

    def _chat_template(self, chat_template: str | None) -> str | None:
        if chat_template != "auto":
            return chat_template
        if _has_chat_template(self.model_id):
            return None
        return HUB_CHAT_TEMPLATE

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServingError("the server has not been started: call start() or use `with LocalServer() as server:`")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (``…/v1``) for ``openai.OpenAI(base_url=...)``."""
        return self.url + "/v1"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def command(self, port: int | None = None) -> list[str]:
        """The command line that starts the server (``python -m transformers.cli.transformers serve ...``,
        the same as the ``transformers serve ...`` console script, without relying on PATH)."""
        cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", self.model_id,
               "--host", self.host, "--port", str(port if port is not None else self.port or 8000),
               "--device", self.device, "--dtype", self.dtype, "--log-level", "warning"]
        if self.chat_template:
            cmd += ["--chat-template-kwargs", json.dumps({"chat_template": self.chat_template})]
        if self.quantization:
            cmd += ["--quantization", self.quantization]
        if self.continuous_batching:
            cmd += ["--continuous-batching"]
        return cmd + self.extra_args

    def shell_command(self) -> str:
        """The equivalent ``transformers serve`` command to paste in a terminal (chat template left out)."""
        cmd = self.command()[3:]
        if "--chat-template-kwargs" in cmd:
            i = cmd.index("--chat-template-kwargs")
            del cmd[i : i + 2]
        return "transformers " + " ".join(shlex.quote(c) for c in cmd)

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "LocalServer":
        """Start the server and wait until ``/health`` answers. Idempotent while running."""
        if self.is_running:
            return self
        requested = self._requested_port
        if requested is not None and port_in_use(requested, self.host):
            raise PortInUseError(f"Port {requested} on {self.host} is already in use (another server, or an earlier "
                                 "one still running?). Pass port=None to pick a free port, or stop the other process.")
        for attempt in range(2):
            try:
                return self._start_on(requested if requested is not None else free_port(self.host))
            except PortInUseError:
                # a port picked for us was taken between picking and binding: pick another, once
                if requested is not None or attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_on(self, port: int) -> "LocalServer":
        notice = download_notice(self.model_id)
        if notice:  # transformers serve is about to download the weights: say so first
            print(notice)
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="transformers-serve-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self._log_path, "ab", buffering=0)  # noqa: SIM115 - closed in stop()
        env = dict(os.environ)
        env.update({"PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
        if Path(self.model_id).is_dir():
            env["HF_HUB_OFFLINE"] = "1"  # a local folder needs no network
        env.update(self.env)
        t0 = time.monotonic()
        self._proc = subprocess.Popen(self.command(port), stdin=subprocess.DEVNULL, stdout=self._log_file,
                                      stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.port = port
        _RUNNING.add(self)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail(25)
                hint = ""
                if "address already in use" in tail.lower():
                    raise PortInUseError(f"transformers serve could not bind {self.host}:{self.port}: the port was "
                                         f"taken.\n--- last lines of the server log ---\n{tail}")
                if "Missing dependencies for serving" in tail:
                    hint = " Install the serving extras: pip install 'transformers[serving]'."
                error = _last_error_line(_tail(self._log_path, 400))
                raise ServerStartError(f"transformers serve exited with code {code} before it was ready"
                                       f"{': ' + error if error else '.'}{hint} Full log: {self._log_path}", tail)
            with contextlib.suppress(EndpointUnreachableError):
                if check_endpoint(self.url, timeout=2.0)["health"] == 200:
                    return
            if time.monotonic() > deadline:
                raise ServerStartError(f"transformers serve did not answer {self.url}/health within "
                                       f"{self.startup_timeout:.0f} s. Full log: {self._log_path}", self.log_tail(25))
            time.sleep(0.25)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` s) and close its log. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: reaches any child it started too
            except (ProcessLookupError, PermissionError):
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        _RUNNING.discard(self)

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` non-empty lines of the server log."""
        return _tail(self._log_path, lines)

    def check(self, timeout: float = 5.0) -> dict[str, Any]:
        """:func:`check_endpoint` on this server."""
        return check_endpoint(self, timeout)

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at {self.url}" if self.is_running else "stopped"
        return f"LocalServer({self.label!r}, {state})"


def serve(model: str | os.PathLike[str] | None = None, **kwargs: Any) -> LocalServer:
    """Deprecated (goes in 0.3.0): ``LocalServer(model, **kwargs).start()``, or ``with LocalServer(model) as server:``."""
    warnings.warn(f"codellama_course.serving.serve() is deprecated and goes in {_REMOVED_IN}: use "
                  "`LocalServer(model, ...).start()`, or `with LocalServer(model) as server:`.",
                  FutureWarning, stacklevel=2)
    return LocalServer(model, **kwargs).start()


# Names that moved out of this module when the server and the clients were split (0.2.0). The client names
# keep working from here for one release, with a FutureWarning; the recipes are lesson material now.
_MOVED_TO_CLIENTS = frozenset({
    "Sampling", "SPACE_DEFAULTS", "SPACE_FIM_TEMPLATE", "FimPrompt", "fim_prompt", "openai_client",
    "inference_client", "api_complete", "api_infill", "api_chat", "check_endpoint", "ServingError",
    "EndpointUnreachableError",
})
_MOVED_TO_LESSONS = frozenset({"RECIPES", "ENDPOINT_GPUS", "PROJECT_STATUS"})


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_CLIENTS:
        import codellama_course.clients

        warnings.warn(f"codellama_course.serving.{name} moved and this name goes in {_REMOVED_IN}: "
                      f"use `from codellama_course.clients import {name}`.", FutureWarning, stacklevel=2)
        return getattr(codellama_course.clients, name)
    if name in _MOVED_TO_LESSONS:
        raise AttributeError(f"codellama_course.serving.{name} moved to the lesson tools: "
                             f"use `from codellama_course.lessons import {name}`.")
    raise AttributeError(f"module 'codellama_course.serving' has no attribute {name!r}")
