"""The clean replay of the story, played once per test session and shared by every scenario module (the
fault module compares its own replay against it)."""

from __future__ import annotations

import pytest

from sandbox.app import Sandbox
from tests.scenarios.story import History, play_story


@pytest.fixture(scope="session")
def story(sandbox_server: tuple[str, Sandbox], tmp_path_factory: pytest.TempPathFactory) -> History:
    sandbox_url, _ = sandbox_server
    return play_story(sandbox_url, tmp_path_factory.mktemp("story-clean"))
