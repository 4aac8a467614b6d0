"""Serving Code Llama behind an HTTP API, and the client code that talks to it (notebook 07).

Two halves:

* :class:`LocalServer` starts ``transformers serve`` (transformers' own OpenAI-compatible server) on
  loopback with a local model folder - the nano model by default - on a free port, waits for
  ``/health``, captures the server log and stops it cleanly (it is a context manager)::

      with LocalServer() as server:                      # nano, 127.0.0.1, a free port
          client = openai_client(server)
          print(api_complete(client, "def fibonacci(n):", model=server.model_id))

* client recipes that work unchanged against that local server and against the servers you would
  use for real Code Llama (vLLM, TGI, Inference Endpoints): :func:`api_complete` /
  :func:`api_infill` (the ``openai`` client's completions, streaming with ``stream=True``) and
  :func:`api_chat` (``huggingface_hub.InferenceClient.chat_completion``). The same calls are what
  ``tests/test_serving.py`` runs against a real ``transformers serve`` with nano.

What ``transformers serve`` answers (measured here, transformers 5.24, offline, local folder):
``GET /health``, ``GET /v1/models``, ``POST /v1/completions`` and ``POST /v1/chat/completions``
(both streaming too). It does **not** answer TGI's own routes (``POST /`` = ``/generate``,
``/generate_stream``), so ``InferenceClient.text_generation`` gets a 404 from it: that call is for
a TGI server or an Inference Endpoint and is shown in :data:`RECIPES`, not exercised here.

Errors are specific and say what to do: :class:`PortInUseError`, :class:`ServerStartError` (with
the tail of the server log), :class:`ModelNotFoundError`, :class:`EndpointUnreachableError`.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "LocalServer",
    "serve",
    "Sampling",
    "SPACE_DEFAULTS",
    "FimPrompt",
    "fim_prompt",
    "openai_client",
    "inference_client",
    "api_complete",
    "api_infill",
    "api_chat",
    "check_endpoint",
    "free_port",
    "port_in_use",
    "ServingError",
    "PortInUseError",
    "ServerStartError",
    "ModelNotFoundError",
    "EndpointUnreachableError",
    "SPACE_FIM_TEMPLATE",
    "ENDPOINT_GPUS",
    "RECIPES",
    "PROJECT_STATUS",
]

LOOPBACK = "127.0.0.1"
# The prompt string the blog's playground Space built for infilling (spaces/codellama/codellama-playground).
# It relies on the server's tokenizer turning "<PRE>"/"<SUF>"/"<MID>" into the special pieces; see fim_prompt().
SPACE_FIM_TEMPLATE = "<PRE> {prefix} <SUF>{suffix} <MID>"


# ---------------------------------------------------------------------------------------------
# errors


class ServingError(RuntimeError):
    """Base class of the errors raised by this module."""


class PortInUseError(ServingError, OSError):
    """The port asked for is already taken by another process."""


class ServerStartError(ServingError):
    """The server process exited, or did not answer ``/health`` in time. ``.log_tail`` holds its last lines."""

    def __init__(self, message: str, log_tail: str = ""):
        super().__init__(message + (f"\n--- last lines of the server log ---\n{log_tail}" if log_tail else ""))
        self.log_tail = log_tail


class ModelNotFoundError(ServingError, FileNotFoundError):
    """The model folder (or Hub id, offline) cannot be found."""


class EndpointUnreachableError(ServingError, ConnectionError):
    """Nothing answers at the URL (wrong URL, server not running, firewall)."""


# ---------------------------------------------------------------------------------------------
# sampling parameters: the playground Space's defaults, spelled for each kind of server


@dataclass(frozen=True)
class Sampling:
    """Sampling settings, with the defaults of the blog's playground Space (temperature 0.1, top-p 0.9,
    256 new tokens, repetition penalty 1.05). ``temperature=0`` means greedy decoding."""

    temperature: float = 0.1
    top_p: float = 0.9
    max_new_tokens: int = 256
    repetition_penalty: float = 1.05
    seed: int | None = None

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0 (0 = greedy)")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be > 0 (1.0 = no penalty)")

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` (in-process, as in notebooks 02-04)."""
        kw: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                              "repetition_penalty": self.repetition_penalty}
        if self.do_sample:
            kw.update(temperature=self.temperature, top_p=self.top_p)
        return kw

    def openai_kwargs(self, flavor: Literal["transformers", "vllm", "openai"] = "transformers") -> dict[str, Any]:
        """Keyword arguments for the ``openai`` client's ``completions.create`` / ``chat.completions.create``.

        The OpenAI API has no repetition penalty (its ``frequency_penalty`` is a different, additive
        penalty), so each server takes it its own way:

        * ``"transformers"`` (``transformers serve``): a ``generation_config`` JSON in the request body.
          It is merged over the model's own generation config (EOS/``▁<EOT>`` stay), and it is also the
          only way to turn sampling on: ``temperature`` alone is ignored when the model's config says
          ``do_sample=False``, as nano's (and Code Llama's) does.
        * ``"vllm"`` (vLLM, and TGI's OpenAI routes): ``repetition_penalty`` as an extra body field.
        * ``"openai"``: plain OpenAI parameters only; the repetition penalty is not sent.
        """
        if flavor == "transformers":
            gen: dict[str, Any] = {"do_sample": self.do_sample, "max_new_tokens": self.max_new_tokens,
                                   "repetition_penalty": self.repetition_penalty}
            if self.do_sample:
                gen.update(temperature=self.temperature, top_p=self.top_p)
            kw: dict[str, Any] = {"max_tokens": self.max_new_tokens, "extra_body": {"generation_config": json.dumps(gen)}}
        elif flavor in ("vllm", "openai"):
            kw = {"max_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p}
            if flavor == "vllm":
                kw["extra_body"] = {"repetition_penalty": self.repetition_penalty}
        else:
            raise ValueError(f"unknown flavor {flavor!r}: use 'transformers', 'vllm' or 'openai'")
        if self.seed is not None:
            kw["seed"] = self.seed
        return kw

    def tgi_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``InferenceClient.text_generation`` against TGI (``/generate``).
        TGI rejects ``temperature=0``: greedy is ``do_sample=False``."""
        kw: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty,
                              "do_sample": self.do_sample}
        if self.do_sample:
            kw.update(temperature=self.temperature, top_p=self.top_p)
        if self.seed is not None:
            kw["seed"] = self.seed
        return kw


SPACE_DEFAULTS = Sampling()


# ---------------------------------------------------------------------------------------------
# ports and endpoints


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something already listens on ``host:port`` (or the port cannot be bound).

    Binds with ``SO_REUSEADDR``, as uvicorn does, so connections of a stopped server that linger in
    TIME_WAIT do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _base_url(url_or_server: Any) -> str:
    url = getattr(url_or_server, "url", url_or_server)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL or a LocalServer, got {url_or_server!r}")
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _get_json(url: str, timeout: float) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    # Loopback URLs never go through a proxy; remote ones use the environment's settings.
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(urllib.parse.urlsplit(url).hostname or "") else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        return e.code, None
    try:
        return status, json.loads(body or b"null")
    except json.JSONDecodeError:
        return status, None


def check_endpoint(url_or_server: Any, timeout: float = 5.0) -> dict[str, Any]:
    """Check that an OpenAI-compatible server answers at ``url`` and list its models.

    Tries ``GET /health`` (transformers serve, TGI, vLLM) then ``GET /v1/models``. Returns
    ``{"url", "health", "models"}``; raises :class:`EndpointUnreachableError` when nothing answers.
    """
    base = _base_url(url_or_server)
    info: dict[str, Any] = {"url": base, "health": None, "models": []}
    try:
        status, body = _get_json(base + "/health", timeout)
        info["health"] = status
        status_m, models = _get_json(base + "/v1/models", timeout)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise EndpointUnreachableError(
            f"Nothing answers at {base} ({reason}). Is the server running, and is the URL right "
            f"(scheme, host, port)? For a local server use LocalServer(), which picks a free port and waits "
            f"for /health.") from e
    if status_m == 200 and isinstance(models, dict):
        info["models"] = [m.get("id") for m in models.get("data", []) if isinstance(m, dict)]
    if info["health"] != 200 and status_m != 200:
        raise EndpointUnreachableError(
            f"{base} answers, but neither /health nor /v1/models (HTTP {info['health']} / {status_m}): "
            "is this an OpenAI-compatible server? For TGI's own API use InferenceClient.text_generation.")
    return info


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
    from .loading import resolve_model
    from .registry import nano_dir

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

    from .hardware import hub_online

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
    import re

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
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, *, port: int | None = None,
                 host: str = LOOPBACK, chat_template: str | None = "auto", quantization: str | None = None,
                 continuous_batching: bool = False, device: str = "cpu", dtype: str = "auto",
                 startup_timeout: float = 120.0, log_path: str | os.PathLike[str] | None = None,
                 extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None):
        if not _is_loopback(host):
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
        from .prompts import HUB_CHAT_TEMPLATE

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
        import shlex

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
        from .loading import download_notice

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
            try:
                status, _ = _get_json(self.url + "/health", timeout=2.0)
                if status == 200:
                    return
            except (urllib.error.URLError, OSError):
                pass
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


def serve(model: str | os.PathLike[str] | None = None, **kwargs) -> LocalServer:
    """Start a :class:`LocalServer` and return it (call ``.stop()``, or use it in a ``with`` block)."""
    return LocalServer(model, **kwargs).start()


# ---------------------------------------------------------------------------------------------
# clients


def openai_client(url_or_server: Any, *, api_key: str | None = None, timeout: float = 120.0):
    """An ``openai.OpenAI`` client for an OpenAI-compatible server (``…/v1``): transformers serve, vLLM,
    TGI's Messages API, Inference Endpoints. Local servers need no key; for Inference Endpoints ``HF_TOKEN`` is
    used when ``api_key`` is not given. Retries are off so that errors show at once."""
    from openai import OpenAI

    base = _base_url(url_or_server)
    host = urllib.parse.urlsplit(base).hostname or ""
    key = api_key
    if key is None and (host == "huggingface.co" or host.endswith((".huggingface.cloud", ".huggingface.co"))):
        key = os.environ.get("HF_TOKEN")  # your Hugging Face token goes to Hugging Face only
    client = OpenAI(base_url=base + "/v1", api_key=key or "not-needed", timeout=timeout, max_retries=0)
    if isinstance(url_or_server, LocalServer):
        _SERVED_MODEL[client] = url_or_server.model_id
    return client


@contextlib.contextmanager
def inference_client(url_or_server: Any, *, token: str | None = None, timeout: float = 120.0) -> Iterator[Any]:
    """``huggingface_hub.InferenceClient`` for a server, as a context manager.

    ``HF_HUB_OFFLINE=1`` (how this course runs offline) makes huggingface_hub refuse *every* HTTP
    request, even to a server on this machine. For a loopback URL this lifts offline mode for the
    duration of the ``with`` block only (iterate streams inside it); remote URLs are left alone::

        with inference_client(server) as client:
            client.chat_completion(messages, max_tokens=64)
    """
    from huggingface_hub import InferenceClient
    from huggingface_hub import constants as hub_constants

    base = _base_url(url_or_server)
    client = InferenceClient(base_url=base, token=token, timeout=timeout)
    lift = _is_loopback(urllib.parse.urlsplit(base).hostname or "") and hub_constants.HF_HUB_OFFLINE
    if lift:
        hub_constants.HF_HUB_OFFLINE = False
    try:
        yield client
    finally:
        if lift:
            hub_constants.HF_HUB_OFFLINE = True


def _unreachable(exc: BaseException, client: Any) -> EndpointUnreachableError:
    url = str(getattr(client, "base_url", "") or getattr(client, "model", "") or "the server")
    return EndpointUnreachableError(f"Could not connect to {url}: {str(exc).rstrip('.')}. Is the server running "
                                    "(LocalServer().start(), or your TGI/vLLM endpoint), and is the URL right?")


def _is_connect_error(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"APIConnectionError", "ConnectError", "ConnectTimeout", "ConnectionError"}) and \
        "APITimeoutError" not in names


# The model of a client made for a LocalServer: GET /v1/models does not list it on every transformers
# version (5.9, Colab's, lists only the Hub cache's models there, and answers 500 while that folder is missing).
_SERVED_MODEL: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def _model_of(client: Any, model: str | None) -> str:
    if model:
        return model
    if client in _SERVED_MODEL:
        return _SERVED_MODEL[client]
    # One model per server (transformers serve pins the one it was started with): ask which.
    try:
        models = client.models.list()
    except Exception as e:  # noqa: BLE001
        if _is_connect_error(e):
            raise _unreachable(e, client) from e
        raise
    ids = [m.id for m in models.data]
    if not ids:
        raise ServingError("the server lists no models: pass model=...")
    return ids[0]


def _completion(client: Any, prompt: str, *, model: str | None, sampling: Sampling, flavor: str,
                stop: Sequence[str] | None, stream: bool):
    kw = sampling.openai_kwargs(flavor)  # type: ignore[arg-type]
    if stop:
        kw["stop"] = list(stop)
    try:
        return client.completions.create(model=_model_of(client, model), prompt=prompt, stream=stream, **kw)
    except Exception as e:  # noqa: BLE001
        if _is_connect_error(e):
            raise _unreachable(e, client) from e
        raise


def _stream_texts(response) -> Iterator[str]:
    for chunk in response:
        for choice in chunk.choices:
            if choice.text:
                yield choice.text


def api_complete(client: Any, prompt: str, *, model: str | None = None, sampling: Sampling = SPACE_DEFAULTS,
                 flavor: str = "transformers", stop: Sequence[str] | None = None, stream: bool = False):
    """Code completion through ``POST /v1/completions`` with the ``openai`` client.

    Returns the generated text, or with ``stream=True`` an iterator of text pieces as they arrive.
    ``model=None`` asks the server which model it serves. ``flavor`` says how to send the repetition
    penalty (see :meth:`Sampling.openai_kwargs`): ``"transformers"`` for ``transformers serve``,
    ``"vllm"`` for vLLM/TGI, ``"openai"`` for anything else.
    """
    response = _completion(client, prompt, model=model, sampling=sampling, flavor=flavor, stop=stop, stream=stream)
    if stream:
        return _stream_texts(response)
    return response.choices[0].text


# ---------------------------------------------------------------------------------------------
# infilling over a text API


@dataclass
class FimPrompt:
    """An infilling prompt for a server that takes *text*: ``text`` is what is sent.

    ``ids`` are the ids Meta's reference builds (:func:`codellama_course.infill_ids`);
    ``server_ids`` what the tokenizer makes of ``text`` (a server adds BOS and tokenizes it
    in one piece); ``exact`` says whether the two agree. They differ when SentencePiece (Meta) and the
    Hugging Face tokenizer merge a whitespace run differently: a text API cannot send Meta's ids
    then, only a close approximation. In-process generation (``codellama_course.infill``) is always exact.
    """

    prefix: str
    suffix: str
    text: str
    ids: list[int]
    server_ids: list[int]
    exact: bool
    pieces: dict[str, str] = field(default_factory=dict)

    def first_difference(self) -> int | None:
        for i, (a, b) in enumerate(zip(self.ids, self.server_ids)):
            if a != b:
                return i
        return None if len(self.ids) == len(self.server_ids) else min(len(self.ids), len(self.server_ids))


def fim_prompt(tokenizer: Any, text: str, suffix: str | None = None) -> FimPrompt:
    """Build the text to send to a completions API for infilling ``text`` (with one ``<FILL_ME>``),
    or ``prefix=text, suffix=suffix``, as close to Meta's ids as text allows.

    The special pieces are written as the tokenizer's own token strings (``▁<PRE>`` ...), which the
    Hugging Face tokenizer matches as special tokens in raw text; of the two spellings (with or
    without a space after ``▁<PRE>``) the one whose tokenization equals :func:`infill_ids` is used.
    """
    from .prompts import fill_me, infill_ids

    prefix, suffix = fill_me(text) if suffix is None else (text, suffix)
    pieces = dict(zip(("prefix", "suffix", "middle"), _fim_piece_strings(tokenizer)))
    ids = infill_ids(tokenizer, prefix, suffix)
    pre, suf, mid = pieces["prefix"], pieces["suffix"], pieces["middle"]
    candidates = [f"{pre} {prefix}{suf}{suffix}{mid}", f"{pre}{prefix}{suf}{suffix}{mid}"]
    if not prefix:
        candidates.reverse()
    best = None
    for cand in candidates:
        got = list(tokenizer(cand).input_ids)
        if got == ids:
            return FimPrompt(prefix, suffix, cand, ids, got, True, pieces)
        best = best or (cand, got)
    return FimPrompt(prefix, suffix, best[0], ids, best[1], False, pieces)


def _fim_piece_strings(tokenizer: Any) -> tuple[str, str, str]:
    from .prompts import MIDDLE_PIECE, PREFIX_PIECE, SUFFIX_PIECE

    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    missing = [p for p in (PREFIX_PIECE, SUFFIX_PIECE, MIDDLE_PIECE) if p not in vocab]
    if missing:
        raise ValueError(f"this tokenizer has no infilling pieces ({', '.join(missing)}): 34B and the Python "
                         "variants cannot infill; use a 7B/13B/70B base or Instruct model, or nano.")
    return PREFIX_PIECE, SUFFIX_PIECE, MIDDLE_PIECE


_END_MARKERS = ("▁<EOT>", "<EOT>", "</s>")


def api_infill(client: Any, tokenizer: Any, text: str, suffix: str | None = None, *, model: str | None = None,
               sampling: Sampling = SPACE_DEFAULTS, flavor: str = "transformers", stream: bool = False):
    """Fill in ``<FILL_ME>`` through a completions API: sends :func:`fim_prompt`'s text, returns the middle
    (or, with ``stream=True``, an iterator of its pieces). Generation must stop at ``▁<EOT>``: the model's
    generation config says so for nano and Code Llama; any end marker that still comes through as text is cut."""
    fp = fim_prompt(tokenizer, text, suffix)
    response = _completion(client, fp.text, model=model, sampling=sampling, flavor=flavor, stop=None, stream=stream)
    if not stream:
        return _cut_end(response.choices[0].text)

    def pieces() -> Iterator[str]:
        for piece in _stream_texts(response):
            cut = _cut_end(piece)
            if cut:
                yield cut
            if cut != piece:
                return

    return pieces()


def _cut_end(text: str) -> str:
    for marker in _END_MARKERS:
        if marker in text:
            text = text[: text.index(marker)]
    return text


# ---------------------------------------------------------------------------------------------
# chat


def api_chat(client: Any, messages: Sequence[Mapping[str, str]], *, model: str | None = None,
             max_tokens: int = 256, temperature: float | None = None, top_p: float | None = None,
             seed: int | None = None, stream: bool = False, **extra: Any):
    """Chat through ``POST /v1/chat/completions`` with ``huggingface_hub.InferenceClient.chat_completion``
    (the Messages API of TGI / Inference Endpoints, vLLM, transformers serve). Returns the reply text, or
    with ``stream=True`` an iterator of its pieces. Pass ``model=`` for a server that serves a given model
    (``transformers serve`` rejects another name; :attr:`LocalServer.model_id`)."""
    kw: dict[str, Any] = {"max_tokens": max_tokens}
    for key, value in (("temperature", temperature), ("top_p", top_p), ("seed", seed), ("model", model)):
        if value is not None:
            kw[key] = value
    if extra:
        kw["extra_body"] = extra
    try:
        out = client.chat_completion(list(messages), stream=stream, **kw)
    except Exception as e:  # noqa: BLE001
        if _is_connect_error(e):
            raise _unreachable(e, client) from e
        raise
    if not stream:
        return out.choices[0].message.content

    def pieces() -> Iterator[str]:
        for chunk in out:
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    yield choice.delta.content

    return pieces()


# ---------------------------------------------------------------------------------------------
# the real world: recipes (documented, not run here)

# The blog's Inference Endpoints guidance (GPU per model size), kept as data for the notebook.
ENDPOINT_GPUS: dict[str, str] = {
    "7B": "1x Nvidia A10G (24 GB)",
    "13B": "1x Nvidia A100 (80 GB)",
    "34B": "1x Nvidia A100 with bitsandbytes 8-bit/4-bit, or 2x A100 (80 GB)",
    "70B": "not in the blog (released later): 2-4x A100/H100 80 GB with tensor parallelism, or 4-bit on one 80 GB GPU",
}

# Status of each project as checked for this course (mid 2026); see notebook 07.
PROJECT_STATUS: dict[str, str] = {
    "TGI": "text-generation-inference: in maintenance mode since Dec 2025, repository archived (read-only) in 2026. "
           "Existing containers and Inference Endpoints still speak its API; for new deployments use vLLM or SGLang.",
    "vLLM": "vLLM: actively developed; OpenAI-compatible server (`vllm serve`), continuous batching (PagedAttention), "
            "tensor parallelism, AWQ/GPTQ/FP8 and bitsandbytes quantization.",
    "transformers serve": "transformers serve: part of transformers 5; OpenAI-compatible, for local use and "
                          "development (no auth), optional continuous batching and bnb quantization.",
    "Inference Endpoints": "Hugging Face Inference Endpoints: managed; the engine is chosen per endpoint "
                           "(vLLM, SGLang, TGI, llama.cpp); the Messages API (/v1/chat/completions) works with all.",
}

RECIPES: dict[str, str] = {
    "tgi_docker": """\
# TGI (text-generation-inference), as in the blog. Needs a GPU and Docker; not run in this course.
model=codellama/CodeLlama-7b-hf
volume=$PWD/data    # share a volume so the weights are downloaded once
docker run --gpus all --shm-size 1g -p 8080:80 -v $volume:/data \\
    -e HF_TOKEN=$HF_TOKEN \\
    ghcr.io/huggingface/text-generation-inference:latest \\
    --model-id $model
# 34B on one A100: add  --quantize bitsandbytes-nf4  (or --quantize bitsandbytes for 8-bit)
# 34B on two GPUs:  add  --num-shard 2""",
    "tgi_generate_curl": """\
# TGI's own API: /generate and /generate_stream (server-sent events)
curl 127.0.0.1:8080/generate -X POST -H 'Content-Type: application/json' \\
    -d '{"inputs": "def fibonacci(n):", "parameters": {"max_new_tokens": 64, "temperature": 0.1, "top_p": 0.9, "do_sample": true, "repetition_penalty": 1.05}}'
curl 127.0.0.1:8080/generate_stream -X POST -H 'Content-Type: application/json' \\
    -d '{"inputs": "def fibonacci(n):", "parameters": {"max_new_tokens": 64}}'""",
    "tgi_text_generation": """\
# Python, TGI's own API (/generate, /generate_stream). Not exercised here: transformers serve has no such route.
from huggingface_hub import InferenceClient
client = InferenceClient(base_url="http://127.0.0.1:8080")   # or your Inference Endpoint URL (+ token=...)
print(client.text_generation("def fibonacci(n):", **Sampling().tgi_kwargs()))
for token in client.text_generation("def fibonacci(n):", stream=True, **Sampling().tgi_kwargs()):
    print(token, end="")""",
    "tgi_messages_api": """\
# TGI's Messages API (/v1/chat/completions, TGI >= 1.4): the same call the course runs against transformers serve.
from huggingface_hub import InferenceClient
client = InferenceClient(base_url="http://127.0.0.1:8080")
api_chat(client, [{"role": "user", "content": "Write a function that reverses a string."}], max_tokens=256)""",
    "inference_endpoint": """\
# Hugging Face Inference Endpoints: deploy codellama/CodeLlama-7b-Instruct-hf from the model page
# (Deploy > Inference Endpoints; GPU per ENDPOINT_GPUS), then use the endpoint URL with the same clients:
from huggingface_hub import InferenceClient
client = InferenceClient(base_url="https://<your-endpoint>.endpoints.huggingface.cloud", token=HF_TOKEN)
api_chat(client, messages, max_tokens=256)                    # Messages API
client.text_generation("def fibonacci(n):", max_new_tokens=64)  # only on a TGI-engine endpoint""",
    "vllm_serve": """\
# vLLM: OpenAI-compatible server with continuous batching. 34B/70B across GPUs with tensor parallelism.
vllm serve codellama/CodeLlama-7b-hf --port 8000
vllm serve codellama/CodeLlama-34b-Instruct-hf --tensor-parallel-size 2 --port 8000
vllm serve codellama/CodeLlama-70b-Instruct-hf --tensor-parallel-size 4 --max-model-len 4096 --port 8000""",
    "vllm_client": """\
# The same completions/infilling code as against transformers serve; only the flavor of the penalty changes.
client = openai_client("http://127.0.0.1:8000")
api_complete(client, "def fibonacci(n):", model="codellama/CodeLlama-7b-hf", flavor="vllm")
api_infill(client, tokenizer, "def f(x):\\n    <FILL_ME>\\n    return y", model="codellama/CodeLlama-7b-hf", flavor="vllm")""",
    "transformers_serve": """\
# transformers' own server (what LocalServer starts), from a terminal:
transformers serve ./my-model-folder --host 127.0.0.1 --port 8000 --device cpu
# on a GPU, 4-bit with bitsandbytes, with continuous batching:
transformers serve codellama/CodeLlama-13b-hf --quantization bnb-4bit --continuous-batching""",
}
