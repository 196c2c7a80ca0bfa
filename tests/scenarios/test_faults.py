"""docs/reliability.md / issue 4 "Done means": the same story replayed on a fresh sandbox and home with HubSpot and
Brevo injecting 10 % 429s, 5 % 500s and 2 % timeouts into every API call ends in the identical state:
the same CRM properties and notes, Brevo attributes and lists, and the same emails, each sent once.

A checkpoint run that fails under faults is started again at the same as_of, as the hourly schedule would
on its next tick (story.play_story, up to MAX_ATTEMPTS runs); the end state must still be identical."""

from __future__ import annotations

from collections import Counter

import pytest

from sandbox.app import Sandbox
from tests.scenarios.story import STORY_TIMEOUT_SECONDS, History, message_key, play_story

FAULTS = {"rate_429": 0.1, "rate_500": 0.05, "rate_timeout": 0.02, "seed": 4}

# the first test here may play both stories: the clean one (shared with test_flows) and the faulty one
pytestmark = pytest.mark.timeout(2 * STORY_TIMEOUT_SECONDS)


@pytest.fixture(scope="module")
def faulty_story(story: History, sandbox_server: tuple[str, Sandbox],
                 tmp_path_factory: pytest.TempPathFactory) -> History:
    """Played after the clean story (which it depends on), since both drive the one session sandbox."""
    sandbox_url, _ = sandbox_server
    return play_story(sandbox_url, tmp_path_factory.mktemp("story-faulty"), faults=FAULTS)


def destination_calls(history: History) -> int:
    return sum(n for key, n in history.calls.items() if key.startswith(("hubspot ", "brevo ")))


def test_faults_reach_the_same_end_state_as_the_clean_replay(story: History, faulty_story: History) -> None:
    clean, faulty = story.snapshot(), faulty_story.snapshot()
    assert clean["emails"], "the clean replay sent emails to compare"
    assert faulty["contacts"] == clean["contacts"]
    assert faulty["emails"] == clean["emails"]


def test_faults_send_every_message_once(faulty_story: History) -> None:
    keys = Counter(message_key(email) for email in faulty_story.all_emails())
    assert keys and {key: n for key, n in keys.items() if n > 1} == {}


def test_faults_were_injected_and_retried(story: History, faulty_story: History) -> None:
    """The faulty replay needed more API calls than the clean one: the clients retried what failed."""
    assert destination_calls(faulty_story) > destination_calls(story), (
        f"runs per checkpoint: {faulty_story.attempts}")
