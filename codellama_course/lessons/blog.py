"""What the real Code Llama wrote for the examples of Hugging Face's 2023 blog post, quoted from the post.

Notebooks 02-04 run the post's examples on nano. Next to nano's output they show the output the post
recorded (``print(blog_output("completion"))``), so a learner sees what a real Code Llama does. The quotes and
their attribution live in ``data/blog_outputs.json``; nothing here is generated, and where the post shows no
output for an example, :func:`blog_output` says so.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["BlogOutput", "blog_output", "blog_examples"]


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("data", "blog_outputs.json").read_text(encoding="utf-8")
    return json.loads(text)


def blog_examples() -> tuple[str, ...]:
    """The examples of the post that have an entry: ``("completion", "infilling", "chat", "4bit")``.

    Taught in: notebook 02 deep dive "the blog's recipe, in transformers 5".
    """
    return tuple(_data()["examples"])


@dataclass(frozen=True)
class BlogOutput:
    """One example of the post: where it is, what ran, and the output the post shows (``None``: it shows none)."""

    example: str
    title: str
    publisher: str
    url: str
    date: str  # ISO date of the post
    section: str
    model: str
    settings: str | None
    introduced_as: str | None  # the post's own words before the output ("This may produce output like ...")
    output: str | None
    why_no_output: str | None

    @property
    def attribution(self) -> str:
        day = dt.date.fromisoformat(self.date)
        return (f'"{self.title}", {self.publisher}, {day.day} {day:%B %Y}, {self.url} '
                f'(section "{self.section}")')

    def __str__(self) -> str:
        lines = [f"Quoted from {self.attribution}", f"model: {self.model}"]
        if self.output is None:
            lines.append(f"The post shows no output for this example. {self.why_no_output or ''}".rstrip())
            return "\n".join(lines)
        if self.settings:
            lines.append(f"run with: {self.settings}")
        if self.introduced_as:
            lines.append(f'the post: "{self.introduced_as}"')
        lines += ["-" * 30 + " the post's output " + "-" * 30, self.output, "-" * 79]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))


def blog_output(example: str) -> BlogOutput:
    """The post's recorded output for ``example`` (see :func:`blog_examples`), with its attribution.

    Taught in: notebook 02 deep dive "the blog's recipe, in transformers 5", notebook 03 §5, notebook 04 §6.
    """
    data = _data()
    try:
        entry = data["examples"][example]
    except KeyError:
        raise KeyError(f"no blog example {example!r}; known: {', '.join(data['examples'])}") from None
    src = data["source"]
    return BlogOutput(example=example, title=src["title"], publisher=src["publisher"], url=src["url"],
                      date=src["date"], section=entry["section"], model=entry["model"],
                      settings=entry.get("settings"), introduced_as=entry.get("introduced_as"),
                      output=entry.get("output"), why_no_output=entry.get("why_no_output"))
