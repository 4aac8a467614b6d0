"""Client code for Code Llama behind an HTTP API (notebook 07): the same calls work against the course's
:class:`~codellama_course.serving.LocalServer` (``transformers serve`` with nano) and against the servers
you would use for real Code Llama (vLLM, TGI, Inference Endpoints)::

    client = openai_client("http://127.0.0.1:8000")          # or a LocalServer
    print(api_complete(client, "def fibonacci(n):"))

* :func:`api_complete` / :func:`api_infill`: the ``openai`` client's completions (streaming with
  ``stream=True``); :func:`fim_prompt` builds the infilling text as close to Meta's ids as text allows.
* :func:`api_chat`: ``huggingface_hub.InferenceClient.chat_completion`` (the Messages API).
* :class:`Sampling`: the blog's playground Space's defaults (:data:`SPACE_DEFAULTS`), spelled for each
  kind of server.
* :func:`check_endpoint`: does an OpenAI-compatible server answer at a URL, and which models does it list.

Connection failures raise :class:`EndpointUnreachableError` (a :class:`ServingError`), saying what to check.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .prompts import EOT_PIECE, MIDDLE_PIECE, PREFIX_PIECE, SUFFIX_PIECE, fill_me, infill_ids

__all__ = [
    "Sampling",
    "SPACE_DEFAULTS",
    "SPACE_FIM_TEMPLATE",
    "END_MARKERS",
    "FimPrompt",
    "fim_prompt",
    "openai_client",
    "inference_client",
    "create_completion",
    "api_complete",
    "api_infill",
    "api_chat",
    "cut_at_end",
    "check_endpoint",
    "is_loopback",
    "ServingError",
    "EndpointUnreachableError",
]

# The prompt string the blog's playground Space built for infilling (spaces/codellama/codellama-playground):
# "<PRE> {prefix} <SUF>{suffix} <MID>", the FIM pieces without SentencePiece's "▁". It relies on the server's
# tokenizer turning "<PRE>"/"<SUF>"/"<MID>" into the special pieces; see fim_prompt().
_PRE, _SUF, _MID = (piece.removeprefix("▁") for piece in (PREFIX_PIECE, SUFFIX_PIECE, MIDDLE_PIECE))
SPACE_FIM_TEMPLATE = f"{_PRE} {{prefix}} {_SUF}{{suffix}} {_MID}"
# What ends an infill when it comes back as text: the end-of-infill piece (either spelling) and EOS.
END_MARKERS = (EOT_PIECE, EOT_PIECE.removeprefix("▁"), "</s>")


# ---------------------------------------------------------------------------------------------
# errors


class ServingError(RuntimeError):
    """Base class of the serving errors (this module's and :mod:`codellama_course.serving`'s).

    Taught in: notebook 07 §3.
    """


class EndpointUnreachableError(ServingError, ConnectionError):
    """Nothing answers at the URL (wrong URL, server not running, firewall).

    Taught in: notebook 07 §3.
    """


# ---------------------------------------------------------------------------------------------
# sampling parameters: the playground Space's defaults, spelled for each kind of server


@dataclass(frozen=True)
class Sampling:
    """Sampling settings, with the defaults of the blog's playground Space (temperature 0.1, top-p 0.9,
    256 new tokens, repetition penalty 1.05). ``temperature=0`` means greedy decoding.

    Taught in: notebook 07 §3.
    """

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
        """Keyword arguments for ``model.generate`` (in-process, as in notebooks 02-04).

        Taught in: notebook 07 §3.
        """
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

        Taught in: notebook 07 §3.
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
        TGI rejects ``temperature=0``: greedy is ``do_sample=False``.

        Taught in: notebook 07 §3.
        """
        kw: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty,
                              "do_sample": self.do_sample}
        if self.do_sample:
            kw.update(temperature=self.temperature, top_p=self.top_p)
        if self.seed is not None:
            kw["seed"] = self.seed
        return kw


SPACE_DEFAULTS = Sampling()



# ---------------------------------------------------------------------------------------------
# endpoints


def is_loopback(host: str) -> bool:
    """True for a loopback address (``127.x.x.x``, ``::1``, ``localhost``): this machine only.

    Taught in: notebook 07 §2.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _base_url(url_or_server: Any) -> str:
    url = getattr(url_or_server, "url", url_or_server)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL or a server object with a .url (LocalServer), got {url_or_server!r}")
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _get_json(url: str, timeout: float) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    # Loopback URLs never go through a proxy; remote ones use the environment's settings.
    handlers = [urllib.request.ProxyHandler({})] if is_loopback(urllib.parse.urlsplit(url).hostname or "") else []
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

    Taught in: notebook 07 §3.
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
# clients


def openai_client(url_or_server: Any, *, api_key: str | None = None, timeout: float = 120.0):
    """An ``openai.OpenAI`` client for an OpenAI-compatible server (``…/v1``): transformers serve, vLLM,
    TGI's Messages API, Inference Endpoints. Local servers need no key; for Inference Endpoints ``HF_TOKEN`` is
    used when ``api_key`` is not given. Retries are off so that errors show at once.

    Taught in: notebook 07 §3.
    """
    from openai import OpenAI

    base = _base_url(url_or_server)
    host = urllib.parse.urlsplit(base).hostname or ""
    key = api_key
    if key is None and (host == "huggingface.co" or host.endswith((".huggingface.cloud", ".huggingface.co"))):
        key = os.environ.get("HF_TOKEN")  # your Hugging Face token goes to Hugging Face only
    client = OpenAI(base_url=base + "/v1", api_key=key or "not-needed", timeout=timeout, max_retries=0)
    served = getattr(url_or_server, "model_id", None)  # a LocalServer serves one model: remember which
    if not isinstance(url_or_server, str) and isinstance(served, str):
        _SERVED_MODEL[client] = served
    return client


@contextlib.contextmanager
def inference_client(url_or_server: Any, *, token: str | None = None, timeout: float = 120.0) -> Iterator[Any]:
    """``huggingface_hub.InferenceClient`` for a server, as a context manager.

    ``HF_HUB_OFFLINE=1`` (how this course runs offline) makes huggingface_hub refuse *every* HTTP
    request, even to a server on this machine. For a loopback URL this lifts offline mode for the
    duration of the ``with`` block only (iterate streams inside it); remote URLs are left alone::

        with inference_client(server) as client:
            client.chat_completion(messages, max_tokens=64)

    Taught in: notebook 07 §3.
    """
    from huggingface_hub import InferenceClient
    from huggingface_hub import constants as hub_constants

    base = _base_url(url_or_server)
    client = InferenceClient(base_url=base, token=token, timeout=timeout)
    lift = is_loopback(urllib.parse.urlsplit(base).hostname or "") and hub_constants.HF_HUB_OFFLINE
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


def create_completion(client: Any, prompt: str, *, model: str | None = None, sampling: Sampling = SPACE_DEFAULTS,
                      flavor: str = "transformers", stop: Sequence[str] | None = None, stream: bool = False):
    """The raw ``client.completions.create`` answer (or, with ``stream=True``, its stream of chunks with
    ``finish_reason`` and ``usage``): :func:`api_complete` without taking the text out. ``sampling`` is spelled
    for ``flavor`` (:meth:`Sampling.openai_kwargs`); ``model=None`` asks the server which model it serves; a
    server that does not answer raises :class:`EndpointUnreachableError`.

    Taught in: notebook 07 §3.
    """
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

    Taught in: notebook 07 §3.
    """
    response = create_completion(client, prompt, model=model, sampling=sampling, flavor=flavor, stop=stop, stream=stream)
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

    Taught in: notebook 07 §3.
    """

    prefix: str
    suffix: str
    text: str
    ids: list[int]
    server_ids: list[int]
    exact: bool
    pieces: dict[str, str] = field(default_factory=dict)

    def first_difference(self) -> int | None:
        """The first position where ``server_ids`` differ from Meta's ``ids`` (``None`` when they agree)."""
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

    Taught in: notebook 07 §3.
    """
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
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    missing = [p for p in (PREFIX_PIECE, SUFFIX_PIECE, MIDDLE_PIECE) if p not in vocab]
    if missing:
        raise ValueError(f"this tokenizer has no infilling pieces ({', '.join(missing)}): 34B and the Python "
                         "variants cannot infill; use a 7B/13B/70B base or Instruct model, or nano.")
    return PREFIX_PIECE, SUFFIX_PIECE, MIDDLE_PIECE


def api_infill(client: Any, tokenizer: Any, text: str, suffix: str | None = None, *, model: str | None = None,
               sampling: Sampling = SPACE_DEFAULTS, flavor: str = "transformers", stream: bool = False):
    """Fill in ``<FILL_ME>`` through a completions API: sends :func:`fim_prompt`'s text, returns the middle
    (or, with ``stream=True``, an iterator of its pieces). Generation must stop at ``▁<EOT>``: the model's
    generation config says so for nano and Code Llama; any end marker that still comes through as text is cut.

    Taught in: notebook 07 §3.
    """
    fp = fim_prompt(tokenizer, text, suffix)
    response = create_completion(client, fp.text, model=model, sampling=sampling, flavor=flavor, stop=None, stream=stream)
    if not stream:
        return cut_at_end(response.choices[0].text)

    def pieces() -> Iterator[str]:
        for piece in _stream_texts(response):
            cut = cut_at_end(piece)
            if cut:
                yield cut
            if cut != piece:
                return

    return pieces()


def cut_at_end(text: str) -> str:
    """``text`` up to the first end marker (:data:`END_MARKERS`: ``▁<EOT>``, ``<EOT>``, ``</s>``), for a server
    that sends them back as text.

    Taught in: notebook 07 §3.
    """
    for marker in END_MARKERS:
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
    (``transformers serve`` rejects another name; :attr:`LocalServer.model_id`).

    Taught in: notebook 07 §3.
    """
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
