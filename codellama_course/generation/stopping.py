"""Stop sequences: which strings end a sample, watching for them while generating, and the final cut."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

#: HumanEval's stop sequences (Codex paper; also Code Llama's evaluation): a completed Python
#: function body ends where the model starts a new top-level statement.
PYTHON_STOPS: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")



def resolve_stops(stop: None | str | Sequence[str]) -> list[str]:
    """``None`` -> ``[]``; ``"python"`` -> :data:`PYTHON_STOPS`; a string -> ``[it]``; a list -> itself.

    Taught in: notebook 02 §4.
    """
    if stop is None:
        return []
    if isinstance(stop, str):
        return list(PYTHON_STOPS) if stop == "python" else [stop]
    stops = list(stop)
    for s in stops:
        if not isinstance(s, str) or not s:
            raise ValueError(f"stop sequences must be non-empty strings, got {s!r}")
    return stops


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """Cut ``text`` before the earliest stop sequence; returns (text, the stop found or None)."""
    best, found = len(text), None
    for s in stops:
        i = text.find(s)
        if i != -1 and i < best:
            best, found = i, s
    return text[:best], found


def _stopping_criteria_base():
    from transformers import StoppingCriteria

    return StoppingCriteria


class StopOnSequences(_stopping_criteria_base()):  # type: ignore[misc]
    """A ``StoppingCriteria`` that ends each row as soon as its *generated* text contains a stop
    sequence (the prompt is never searched). Per-row: other rows keep generating.

    Only the last few tokens are decoded at each step (enough to cover the longest stop), so the
    cost does not grow with the length of the output. ``stopped_at[row]`` records the sequence
    length at which a row was stopped.

    Taught in: notebook 02 §4.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], stops: Sequence[str], prompt_length: int,
                 end_ids: Sequence[int] = ()):
        self.decode = decode
        self.stops = list(stops)
        self.prompt_length = prompt_length
        self.end_ids = set(int(i) for i in end_ids)
        self.window = 4 * max(len(s) for s in self.stops) + 4  # a character can take 4 byte tokens
        self.stopped_at: dict[int, int] = {}
        self.ended: set[int] = set()

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        length = input_ids.shape[1]
        start = max(self.prompt_length, length - self.window)
        tail = input_ids[:, start:].tolist()
        done = []
        for row, ids in enumerate(tail):
            if row in self.stopped_at or row in self.ended:
                done.append(True)
                continue
            if ids and ids[-1] in self.end_ids:  # ended by EOS/EOT; generate pads it from now on
                self.ended.add(row)
                done.append(True)
                continue
            text = self.decode(ids)
            hit = any(s in text for s in self.stops)
            if hit:
                self.stopped_at[row] = length
            done.append(hit)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
