"""Fixtures shared by the live-suite tests (the suite itself: tests/fixtures_suite.py; plain
helpers: services_support.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits():
    from modipick.zoo.digits import held_out_digits

    return held_out_digits()
