"""Fixtures shared by every test suite: a live sandbox on a free port, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.app import Sandbox, create_app
from tests.servers import serve


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[tuple[str, Sandbox]]:
    sandbox = Sandbox()
    with serve(create_app(sandbox)) as base_url:
        yield base_url, sandbox


@pytest.fixture()
def sandbox_url(sandbox_server: tuple[str, Sandbox]) -> str:
    """Base URL of a freshly reset sandbox (``/hubspot``, ``/brevo``, ... hang off it)."""
    base_url, _ = sandbox_server
    httpx.post(base_url + "/_sandbox/reset").raise_for_status()
    return base_url
