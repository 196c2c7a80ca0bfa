"""Fixtures shared by every test suite: a live sandbox on a free port, reset before each test; and how the
suite is split between pytest-xdist workers (`make test` runs two)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.app import Sandbox, create_app
from tests.servers import serve

SHARED_FIXTURE_GROUPS = {"tests/scenarios": "scenarios"}
"""Folders whose modules share a session fixture that is costly to build (the scenario story): one worker."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test module runs whole on one worker (`--dist loadgroup`): module fixtures are built once and the
    world tests that continue where the previous one ended keep their order."""
    for item in items:
        module = item.nodeid.split("::")[0]
        group = next((name for folder, name in SHARED_FIXTURE_GROUPS.items() if module.startswith(folder)), module)
        item.add_marker(pytest.mark.xdist_group(group))


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
