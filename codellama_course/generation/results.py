"""What the generation helpers return: :class:`Completion`, :class:`Infill`, :class:`ChatReply`, and why
generation ended (the finish reasons)."""

from __future__ import annotations

from dataclasses import dataclass, field

# finish reasons
STOP, EOS, EOT, STEP, LENGTH = "stop", "eos", "eot", "step", "length"


def short(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[: n - 1] + "…")


@dataclass(repr=False)
class Completion:
    """One completion of ``prompt``.

    ``text``: the generated text (without the prompt), cut before any stop sequence.
    ``token_ids``: the ids the model generated, up to and including the one that ended generation
    (EOS, or the token that completed a stop sequence); no padding.
    ``finish_reason``: ``"stop"`` (a stop sequence; see ``stop_sequence``), ``"eos"``/``"eot"``
    (an end id), or ``"length"`` (``max_new_tokens`` reached).
    """

    prompt: str
    text: str
    token_ids: list[int]
    finish_reason: str
    stop_sequence: str | None = None
    prompt_ids: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (f"Completion(text={short(self.text)}, finish_reason={self.finish_reason!r}, "
                f"tokens={len(self.token_ids)})")


@dataclass(repr=False)
class Infill:
    """One infilling result. ``text`` is the whole file: ``prefix + middle + suffix``."""

    prefix: str
    suffix: str
    middle: str
    token_ids: list[int]
    finish_reason: str
    stop_sequence: str | None = None
    prompt_ids: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.prefix + self.middle + self.suffix

    @property
    def stopped_at_eot(self) -> bool:
        """True when the model closed the middle itself with ``▁<EOT>`` (a trustworthy infill)."""
        return self.finish_reason == EOT

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (f"Infill(middle={short(self.middle)}, stopped_at_eot={self.stopped_at_eot}, "
                f"finish_reason={self.finish_reason!r}, tokens={len(self.token_ids)})")


@dataclass(repr=False)
class ChatReply:
    """The assistant's answer. ``messages`` is the conversation *including* this answer, ready for
    the next user turn."""

    text: str
    token_ids: list[int]
    finish_reason: str
    messages: list[dict[str, str]]
    style: str
    prompt_ids: list[int] = field(default_factory=list)
    stop_sequence: str | None = None

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (f"ChatReply(text={short(self.text)}, finish_reason={self.finish_reason!r}, "
                f"style={self.style!r}, turns={len(self.messages)})")
