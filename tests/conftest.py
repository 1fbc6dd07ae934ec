"""Fixtures shared by more than one test folder (a fixture used by one folder lives in that folder's conftest)."""

from __future__ import annotations

import pytest

from tests.helpers.image_server import FaultyImageServer


@pytest.fixture(scope="module")
def image_server():
    """The fault-injecting image server on 127.0.0.1 (``tests/helpers/image_server.py``), one per test module:
    its request counters (retries, flaky routes) start fresh for each module."""
    srv = FaultyImageServer().start()
    yield srv
    srv.stop()
