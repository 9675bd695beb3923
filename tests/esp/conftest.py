"""Fixtures for the ESP tests; the suites live in esp_suites.py."""
from __future__ import annotations

import pytest

from esp_suites import SUITES, Suite


@pytest.fixture(params=sorted(SUITES))
def suite(request) -> Suite:
    return Suite(request.param)
