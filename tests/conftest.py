"""Shared test fixtures. Vectors live in tests/vectors/, each file with its source."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import settings

# the sanitizer run (.ci/sanitize) is slower: fewer examples where a test takes the default
settings.register_profile("sanitize", max_examples=30, deadline=None)
settings.register_profile("default", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

VECTOR_DIR = Path(__file__).parent / "vectors"


def read_vectors(name: str) -> dict:
    data = json.loads((VECTOR_DIR / name).read_text())
    assert data.get("source"), f"{name} must say where its vectors come from"
    return data


@pytest.fixture
def vectors():
    """vectors('file.json') -> the parsed file (asserts it carries a source)."""
    return read_vectors
