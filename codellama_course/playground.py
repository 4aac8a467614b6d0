"""A Code Llama playground like the blog's Space, that also shows what the Space hid (notebook 07).

The Space (``spaces/codellama/codellama-playground``) had a code box where ``<FILL_ME>`` switches to
infilling, streamed output, four sliders (temperature 0.1, top-p 0.9, max new tokens 256, repetition
penalty 1.05) and examples. This one adds, under the output, **the exact prompt and token ids that were
sent, and why generation stopped** (end of infill ``▁<EOT>``, end of sequence ``</s>``, the token budget,
or you pressing Stop).

It runs either

* in-process on a local model (the nano model by default: offline, CPU), with token-exact prompts
  (:func:`codellama_course.infill_ids` for ``<FILL_ME>``), or
* against any OpenAI-compatible endpoint (``transformers serve``/:class:`~codellama_course.serving.LocalServer`,
  vLLM, TGI's Messages API, an Inference Endpoint), through ``/v1/completions``.

From a notebook::

    pg = launch_playground()            # nano, in-process; returns at once
    pg.url                              # open it in a browser
    pg.stop()

From a terminal::

    python -m codellama_course.playground                      # nano, http://127.0.0.1:7860
    python -m codellama_course.playground --endpoint http://127.0.0.1:8000 --flavor vllm

Gradio's analytics and version check are off (``GRADIO_ANALYTICS_ENABLED=False``) and no share link is
ever created; the app listens on 127.0.0.1 unless you pass another host.
"""

# No `from __future__ import annotations` here: Gradio reads the `gr.Request` annotations at runtime.
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry, no version check; before gradio is imported

import argparse
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .clients import (
    SPACE_DEFAULTS,
    SPACE_FIM_TEMPLATE,
    Sampling,
    create_completion,
    cut_at_end,
    fim_prompt,
    openai_client,
)
from .prompts import FILL_TOKEN, fill_me, infill_ids
from .serving import free_port

__all__ = ["Playground", "InProcessBackend", "RemoteBackend", "Details", "EXAMPLES", "build_app",
           "launch_playground", "main"]

# The Space's examples (the first five), and two that show infilling in the middle of a function.
EXAMPLES: list[str] = [
    "X_train, y_train, X_test, y_test = train_test_split(X, y, test_size=0.1)\n\n"
    "# Train a logistic regression model, predict the labels on the test set and compute the accuracy score",
    "def primes(n: int) -> list(int):",
    "Poor English: She no went to the market. Corrected English:",
    'class Circle():\n """ <FILL_ME>',
    "def towers_of_hanoi():",
    'def remove_non_ascii(s: str) -> str:\n    """ <FILL_ME>\n    return result\n',
    "def fibonacci(n):\n    if n < 2:\n        return n\n    <FILL_ME>\n",
]


# ---------------------------------------------------------------------------------------------
# what happened: shown under the output


@dataclass
class Details:
    """Everything about one generation: what was sent, what came back, and why it stopped.

    Taught in: notebook 07 deep dive "the playground".
    """

    mode: str = "completion"  # or "infill"
    backend: str = ""
    prompt_text: str = ""  # the text form of the prompt (what a text API receives)
    prompt_ids: list[int] = field(default_factory=list)
    prompt_pieces: list[str] = field(default_factory=list)
    ids_note: str = ""
    generated_ids: list[int] = field(default_factory=list)
    new_tokens: int = 0
    stop_reason: str = "generating…"
    seconds: float = 0.0
    sampling: Sampling = SPACE_DEFAULTS

    def markdown(self) -> str:
        """What the app shows under the output."""
        s = self.sampling
        how = (f"temperature {s.temperature}, top-p {s.top_p}" if s.do_sample else "greedy (temperature 0)")
        rate = f" · {self.new_tokens / self.seconds:.0f} tokens/s" if self.seconds > 0 and self.new_tokens else ""
        lines = [
            f"**Stopped because:** {self.stop_reason}",
            "",
            f"**Mode:** {self.mode} · **backend:** {self.backend} · {self.new_tokens} new tokens in "
            f"{self.seconds:.1f} s{rate} · {how}, repetition penalty {s.repetition_penalty}, "
            f"max new tokens {s.max_new_tokens}",
            "",
            "**Prompt as text** (what a text API is sent):",
            "```text\n" + self.prompt_text.replace("```", "`\u200b``") + "\n```",
        ]
        if self.prompt_ids:
            lines += [f"**Prompt token ids** ({len(self.prompt_ids)}){self.ids_note}:",
                      "```text\n" + str(self.prompt_ids) + "\n```"]
        if self.prompt_pieces:
            lines += ["**Prompt pieces:**", "```text\n" + " ".join(self.prompt_pieces) + "\n```"]
        if self.generated_ids:
            lines += [f"**Generated token ids** ({len(self.generated_ids)}):",
                      "```text\n" + str(self.generated_ids) + "\n```"]
        return "\n".join(lines)


def _split(code: str) -> tuple[str, str] | None:
    """(prefix, suffix) for a ``<FILL_ME>`` prompt, ``None`` for plain completion."""
    if FILL_TOKEN not in code:
        return None
    return fill_me(code)  # raises ValueError for more than one marker


# ---------------------------------------------------------------------------------------------
# backends


class InProcessBackend:
    """Generate in this process with a transformers model (nano by default), through the course's own
    helpers: :func:`codellama_course.complete` / :func:`codellama_course.infill` with ``stream=True``
    (notebooks 02-03). Prompts are token-exact (``<FILL_ME>``: Meta's infill layout, stop at ``▁<EOT>``).

    Taught in: notebook 07 deep dive "the playground".
    """

    def __init__(self, model: Any = None, tokenizer: Any = None, *, label: str | None = None):
        if model is None or isinstance(model, str):
            from .loading import load

            model, tokenizer = load(model, task="infill", verbose=False)  # the code box takes <FILL_ME>
            label = label or model.codellama_course_info.model
        if tokenizer is None:
            raise ValueError("pass the tokenizer together with a model object")
        self.model, self.tokenizer = model, tokenizer
        self.label = f"in-process: {label or getattr(model, 'name_or_path', 'model')}"
        self._lock = threading.Lock()  # one generation at a time on a CPU

    def stream(self, code: str, sampling: Sampling, cancel: threading.Event) -> Iterator[tuple[str, Details]]:
        """Generate for ``code``; yields ``(text so far, details)`` as tokens arrive. ``cancel.set()`` stops it."""
        import torch
        from transformers import StoppingCriteria

        from .generation import complete, infill

        class _Cancel(StoppingCriteria):  # the Stop button
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        tok = self.tokenizer
        split = _split(code)
        knobs = dict(max_new_tokens=sampling.max_new_tokens, temperature=sampling.temperature, top_p=sampling.top_p,
                     seed=sampling.seed, stream=True, repetition_penalty=sampling.repetition_penalty,
                     stopping_criteria=[_Cancel()])
        d = Details(backend=self.label, sampling=sampling, ids_note=" - exactly what the model sees")
        with self._lock:
            t0 = time.monotonic()
            if split is None:
                d.mode, head, tail = "completion", code, ""
                d.prompt_text, d.prompt_ids = code, list(tok(code).input_ids)
                stream = complete(self.model, tok, code, **knobs)
            else:
                d.mode, (head, tail) = "infill", split
                d.prompt_ids = infill_ids(tok, head, tail)
                d.prompt_text = tok.decode(d.prompt_ids, skip_special_tokens=False)
                stream = infill(self.model, tok, head, tail, **knobs)
            d.prompt_pieces = tok.convert_ids_to_tokens(d.prompt_ids)
            middle = ""
            for chunk in stream:
                middle += chunk
                d.new_tokens += 1  # about one chunk per token; exact count below
                d.seconds = time.monotonic() - t0
                yield head + middle + tail, d
            result = stream.result
            d.seconds = time.monotonic() - t0
            d.prompt_ids = list(result.prompt_ids) or d.prompt_ids
            d.prompt_pieces = tok.convert_ids_to_tokens(d.prompt_ids)
            d.generated_ids = list(result.token_ids)
            d.new_tokens = len(d.generated_ids)
            d.stop_reason = _local_stop_reason(result.finish_reason, d.generated_ids, sampling, cancel, tok)
            text = result.text if split is not None else code + result.text
            yield text, d


def _local_stop_reason(finish: str, gen: list[int], sampling: Sampling, cancel: threading.Event, tok) -> str:
    if cancel.is_set():
        return "stopped by you (Stop button)"
    if finish in ("eot", "eos") and gen:
        piece = tok.convert_ids_to_tokens(gen[-1])
        what = "end of the infill" if finish == "eot" else "end of sequence"
        return f"{what}: the model generated `{piece}` (id {gen[-1]})"
    if finish == "length":
        return f"token budget: max new tokens ({sampling.max_new_tokens}) reached"
    return f"finish_reason={finish!r}"


class RemoteBackend:
    """Generate through an OpenAI-compatible ``/v1/completions`` endpoint, streaming.

    ``flavor`` says how the server takes the repetition penalty (``"transformers"``, ``"vllm"``,
    ``"openai"``; see :meth:`Sampling.openai_kwargs`). ``tokenizer`` (a local copy of the served model's
    tokenizer; a folder or Hub id is loaded) is used to build ``<FILL_ME>`` prompts with the model's own
    special pieces and to show the ids the server should see; without one the Space's text template is sent.

    Taught in: notebook 07 deep dive "the playground".
    """

    def __init__(self, endpoint: Any, *, model: str | None = None, flavor: str = "transformers",
                 tokenizer: Any = None, api_key: str | None = None):
        self.client = openai_client(endpoint, api_key=api_key)
        self.endpoint = str(self.client.base_url)
        self.model = model or getattr(endpoint, "model_id", None)
        self.flavor = flavor
        if tokenizer is None and self.model and os.path.isdir(self.model):
            tokenizer = self.model
        if isinstance(tokenizer, (str, os.PathLike)):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.tokenizer = tokenizer
        self.label = f"endpoint {self.endpoint} ({flavor})"

    def stream(self, code: str, sampling: Sampling, cancel: threading.Event) -> Iterator[tuple[str, Details]]:
        """Generate for ``code`` through the endpoint; yields ``(text so far, details)`` as chunks arrive."""
        split = _split(code)
        d = Details(backend=self.label, sampling=sampling)
        if split is None:
            d.mode, d.prompt_text, prefix, suffix = "completion", code, code, ""
            if self.tokenizer is not None:
                d.prompt_ids = list(self.tokenizer(code).input_ids)
        else:
            prefix, suffix = split
            d.mode = "infill"
            if self.tokenizer is not None:
                fp = fim_prompt(self.tokenizer, prefix, suffix)
                d.prompt_text, d.prompt_ids = fp.text, fp.server_ids
                d.ids_note = (" - as the server's tokenizer splits the text; equal to Meta's infill_ids"
                              if fp.exact else
                              f" - as the server's tokenizer splits the text; differs from Meta's infill_ids "
                              f"from position {fp.first_difference()} (a text API cannot send exact ids)")
            else:
                d.prompt_text = SPACE_FIM_TEMPLATE.format(prefix=prefix, suffix=suffix)
                d.ids_note = ""
        if d.prompt_ids and self.tokenizer is not None:
            d.prompt_pieces = self.tokenizer.convert_ids_to_tokens(d.prompt_ids)
            if not d.ids_note:
                d.ids_note = " - as a local copy of the tokenizer splits it (the server tokenizes the text itself)"
        t0 = time.monotonic()
        response = create_completion(self.client, d.prompt_text, model=self.model, sampling=sampling,
                                     flavor=self.flavor, stream=True)
        middle, finish, ended = "", None, False
        try:
            for chunk in response:
                if cancel.is_set():
                    break
                for choice in chunk.choices:
                    piece = choice.text or ""
                    if d.mode == "infill":  # a server that does not stop at ▁<EOT> by itself
                        cut = cut_at_end(piece)
                        ended = ended or cut != piece
                        piece = cut
                    if piece:
                        middle += piece
                        d.new_tokens += 1
                    finish = choice.finish_reason or finish
                usage = getattr(chunk, "usage", None)
                if usage is not None and getattr(usage, "completion_tokens", None):
                    d.new_tokens = usage.completion_tokens
                d.seconds = time.monotonic() - t0
                yield (prefix + middle + suffix if d.mode == "infill" else code + middle), d
                if ended:
                    break
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
        d.seconds = time.monotonic() - t0
        if cancel.is_set():
            d.stop_reason = "stopped by you (Stop button)"
        elif finish == "length":
            d.stop_reason = f"token budget: the server reports finish_reason='length' (max new tokens {sampling.max_new_tokens})"
        elif finish == "stop" or ended:
            d.stop_reason = ("end of the infill/sequence: the server reports finish_reason='stop' (an end token "
                             "such as ▁<EOT> or </s>, or a stop string)")
        else:
            d.stop_reason = f"the stream ended (finish_reason={finish!r})"
        yield (prefix + middle + suffix if d.mode == "infill" else code + middle), d


# ---------------------------------------------------------------------------------------------
# the app


def _theme():
    import gradio as gr

    # System fonts only: the default theme would fetch Google Fonts, and the playground must work offline.
    return gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "Consolas", "monospace"])


CSS = "#code-input textarea, #output textarea {font-family: ui-monospace, Consolas, monospace;}"

DESCRIPTION = """\
# Code Llama playground
Type code and press **Generate** to continue it. Put one `<FILL_ME>` where code should be **filled in**
(infilling: 7B/13B/70B base and Instruct, and nano; not 34B or the Python models).
Under the output: the exact prompt and token ids that were sent, and why generation stopped.
"""


def build_app(backend: Any = None, *, title: str = "Code Llama playground", defaults: Sampling = SPACE_DEFAULTS):
    """The Gradio ``Blocks`` app around a backend (:class:`InProcessBackend` on nano when ``None``).

    Taught in: notebook 07 deep dive "the playground".
    """
    import gradio as gr

    backend = backend if backend is not None else InProcessBackend()
    cancels: dict[str, threading.Event] = {}

    def generate(code, temperature, top_p, max_new_tokens, repetition_penalty, request: gr.Request):
        if not code or not code.strip():
            raise gr.Error("Type some code first, or pick an example.")
        try:
            _split(code)
        except ValueError as e:
            raise gr.Error(str(e)) from None
        sampling = Sampling(temperature=float(temperature), top_p=max(float(top_p), 0.01),
                            max_new_tokens=int(max_new_tokens), repetition_penalty=float(repetition_penalty))
        session = getattr(request, "session_hash", None) or "default"
        cancel = cancels[session] = threading.Event()
        last = None
        try:
            for out, details in backend.stream(code, sampling, cancel):
                last = details
                yield out, details.markdown()
        except Exception as e:  # noqa: BLE001 - shown in the app, not a traceback
            raise gr.Error(f"{type(e).__name__}: {e}") from None
        if last is None:
            yield code, "nothing was generated"

    def stop(request: gr.Request):
        event = cancels.get(getattr(request, "session_hash", None) or "default")
        if event is not None:
            event.set()

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(DESCRIPTION)
        gr.Markdown(f"Backend: `{getattr(backend, 'label', type(backend).__name__)}`", elem_id="backend")
        code = gr.Textbox(label="Code", placeholder="def fibonacci(n):", lines=8, elem_id="code-input")
        with gr.Row():
            go = gr.Button("Generate", variant="primary", elem_id="generate")
            halt = gr.Button("Stop", elem_id="stop")
        # A monospace Textbox, not gr.Code: gr.Code strips leading/trailing whitespace, and whitespace is code.
        output = gr.Textbox(label="Output", lines=14, max_lines=40, elem_id="output", interactive=False,
                            autoscroll=True)
        with gr.Accordion("Settings (the Space's defaults)", open=False, elem_id="settings"):
            with gr.Row():
                temperature = gr.Slider(0.0, 1.0, value=defaults.temperature, step=0.05, label="Temperature", elem_id="temperature",
                                        info="Higher: more varied. 0 = greedy (always the most likely token)")
                top_p = gr.Slider(0.05, 1.0, value=defaults.top_p, step=0.05, label="Top-p (nucleus sampling)",
                                  elem_id="top-p",
                                  info="Sample only from the most likely tokens covering this probability")
            with gr.Row():
                max_new = gr.Slider(1, 1024, value=defaults.max_new_tokens, step=1, label="Max new tokens",
                                    elem_id="max-new-tokens",
                                    info="The token budget of one generation")
                rep = gr.Slider(1.0, 2.0, value=defaults.repetition_penalty, step=0.05, label="Repetition penalty",
                                elem_id="repetition-penalty",
                                info="Penalise tokens already in the text (1.0 = off)")
        with gr.Accordion("What was sent, and why it stopped", open=True):
            details = gr.Markdown("Press **Generate**.", elem_id="details")
        gr.Examples(examples=[[e] for e in EXAMPLES], inputs=[code], label="Examples (click one, then Generate)")
        event = go.click(generate, inputs=[code, temperature, top_p, max_new, rep], outputs=[output, details],
                         concurrency_limit=1)
        code.submit(generate, inputs=[code, temperature, top_p, max_new, rep], outputs=[output, details],
                    concurrency_limit=1)
        halt.click(stop, inputs=None, outputs=None, queue=False)
        del event
    return demo


def _in_colab() -> bool:
    return "google.colab" in sys.modules


class Playground:
    """A running playground: ``.url``, ``.backend``, ``.stop()``; a context manager too.

    Taught in: notebook 07 deep dive "the playground".
    """

    def __init__(self, demo, url: str, backend: Any):
        self.demo, self.url, self.backend = demo, url, backend

    def stop(self) -> None:
        """Close the app and free its port."""
        self.demo.close()

    def __enter__(self) -> "Playground":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Playground({self.url}, {getattr(self.backend, 'label', '')})"


def launch_playground(model: Any = None, *, endpoint: Any = None, endpoint_model: str | None = None,
                      flavor: str = "transformers", tokenizer: Any = None, host: str = "127.0.0.1",
                      port: int | None = None, inline: bool | None = None, block: bool = False,
                      quiet: bool = True) -> Playground:
    """Start the playground and return at once (unless ``block=True``); stop it with ``.stop()``.

    ``model``: a model name/folder for in-process generation (nano when ``None``), or a
    :class:`InProcessBackend`/:class:`RemoteBackend`. ``endpoint``: an OpenAI-compatible URL or a
    :class:`~codellama_course.serving.LocalServer` to use instead. Never creates a share link.
    ``inline=None`` embeds the app in the notebook on Colab only.

    Taught in: notebook 07 deep dive "the playground".
    """
    if isinstance(model, (InProcessBackend, RemoteBackend)):
        backend = model
    elif endpoint is not None:
        backend = RemoteBackend(endpoint, model=endpoint_model, flavor=flavor, tokenizer=tokenizer)
    else:
        backend = InProcessBackend(model)
    demo = build_app(backend)
    port = port or free_port(host)
    demo.queue(default_concurrency_limit=1, max_size=8)
    demo.launch(server_name=host, server_port=port, share=False, inbrowser=False, quiet=quiet,
                prevent_thread_lock=True, inline=_in_colab() if inline is None else inline,
                show_error=True, ssr_mode=False, mcp_server=False, theme=_theme(), css=CSS,
                footer_links=[])
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    playground = Playground(demo, f"http://{shown_host}:{port}/", backend)
    if block:
        try:
            demo.block_thread()
        finally:
            playground.stop()
    return playground


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m codellama_course.playground``: the playground from a terminal, until Ctrl+C.

    Taught in: notebook 07 deep dive "the playground".
    """
    p = argparse.ArgumentParser(prog="python -m codellama_course.playground",
                                description="The Code Llama playground (Gradio), on nano or on an endpoint.")
    p.add_argument("--model", default=None, help="model for in-process generation: 'nano' (default), a folder, a Hub id")
    p.add_argument("--endpoint", default=None, help="an OpenAI-compatible server URL instead (transformers serve, vLLM, TGI)")
    p.add_argument("--endpoint-model", default=None, help="the model name the endpoint serves (asked when omitted)")
    p.add_argument("--flavor", default="transformers", choices=["transformers", "vllm", "openai"],
                   help="how the endpoint takes the repetition penalty")
    p.add_argument("--tokenizer", default=None, help="local tokenizer of the served model (for <FILL_ME> and ids)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    a = p.parse_args(argv)
    pg = launch_playground(a.model, endpoint=a.endpoint, endpoint_model=a.endpoint_model, flavor=a.flavor,
                           tokenizer=a.tokenizer, host=a.host, port=a.port, inline=False, quiet=True)
    print(f"Code Llama playground: {pg.url}  ({pg.backend.label})  - Ctrl+C to stop", flush=True)
    try:
        pg.demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        pg.stop()
    return 0


def __getattr__(name: str) -> Any:
    if name == "LocalBackend":  # renamed in 0.2.0 (evaluation has a LocalBackend of its own); goes in 0.3.0
        import warnings

        warnings.warn("codellama_course.playground.LocalBackend was renamed and this name goes in 0.3.0: "
                      "use `codellama_course.playground.InProcessBackend`.", FutureWarning, stacklevel=2)
        return InProcessBackend
    raise AttributeError(f"module 'codellama_course.playground' has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
