"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest

from _meta_reference import VOCAB_7B, MetaReference, require


@pytest.fixture(scope="session")
def ref7() -> MetaReference:
    """Meta's reference logic on the reproduction of the 7B vocabulary (skips when ../shared is absent)."""
    return MetaReference(require(VOCAB_7B))
