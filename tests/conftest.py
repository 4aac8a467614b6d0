"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest

from _meta_reference import VOCAB_7B, MetaReference, require


@pytest.fixture(scope="session")
def ref7() -> MetaReference:
    """Meta's reference logic on the reproduction of the 7B vocabulary (skips when ../shared is absent)."""
    return MetaReference(require(VOCAB_7B))


def pytest_collection_modifyitems(items):
    """Tests marked ``background(start=...)`` wait for work started when collection ends: they run last."""
    items.sort(key=lambda item: item.get_closest_marker("background") is not None)


def pytest_collection_finish(session):
    """Start the work of the selected ``background`` tests now, so it runs beside the rest of the suite."""
    if session.config.option.collectonly:
        return
    for start in dict.fromkeys(m.kwargs["start"] for item in session.items for m in item.iter_markers("background")):
        start()
