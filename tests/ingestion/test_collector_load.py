"""Load: a bounded burst of unique form posts from a few concurrent clients against a real ``lifecycle
collector`` process on loopback. Every post must be answered 202, and the landing zone must then hold
exactly the acknowledged records, each once, each with the submission it acknowledged.

The throughput (posts per second, client and server on the same machine) is printed, never asserted.

Size: ``LIFECYCLE_TEST_LOAD_POSTS`` (default 2000; 20000 for the full burst) posts from
``LIFECYCLE_TEST_LOAD_CLIENTS`` (default 4) concurrent clients, each on a connection of its own. The burst
stops by itself after ``LIFECYCLE_TEST_LOAD_SECONDS`` (default 600) even if posts are left.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.ingestion.collector_helpers import collector_process, landed

POSTS = int(os.environ.get("LIFECYCLE_TEST_LOAD_POSTS", "2000"))
CLIENTS = int(os.environ.get("LIFECYCLE_TEST_LOAD_CLIENTS", "4"))
SECONDS = float(os.environ.get("LIFECYCLE_TEST_LOAD_SECONDS", "600"))


async def burst(url: str) -> tuple[dict[int, httpx.Response], float]:
    """Post ``POSTS`` unique submissions (JSON and urlencoded alternately); the answers by post number."""
    answers: dict[int, httpx.Response] = {}
    numbers = itertools.count()
    deadline = time.monotonic() + SECONDS

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for n in numbers:
                if n >= POSTS or time.monotonic() > deadline:
                    return
                email = f"load{n}@example.com"
                if n % 2:
                    answers[n] = await http.post("/forms/newsletter", data={"email": email, "post": str(n)})
                else:
                    answers[n] = await http.post("/forms/contact", json={"email": email, "post": n})

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return answers, time.monotonic() - started


@pytest.mark.timeout(SECONDS + 120)
def test_every_acknowledged_post_is_landed_exactly_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with collector_process(tmp_path / "home") as collector:
        answers, seconds = asyncio.run(burst(collector.url))
        assert "Traceback" not in collector.log() and "rejected" not in collector.log()
    with capsys.disabled():
        print(f"\ncollector load: {len(answers)} form posts from {CLIENTS} clients in {seconds:.1f} s: "
              f"{len(answers) / seconds:.0f} posts/s")
    assert len(answers) == POSTS, f"the burst stopped after {SECONDS:.0f} s with {len(answers)} of {POSTS} posts"
    assert Counter(r.status_code for r in answers.values()) == {202: POSTS}
    acknowledged = {r.json()["id"]: n for n, r in answers.items()}
    records = landed(collector.landing, "forms")
    assert Counter(r["id"] for r in records).most_common(1)[0][1] == 1  # no record twice
    assert {r["id"] for r in records} == set(acknowledged)  # every acknowledged one, nothing else
    for record in records:
        n = acknowledged[record["id"]]
        assert record["fields"]["email"] == f"load{n}@example.com"
        assert record["fields"]["extra"]["post"] in (n, str(n))
        assert record["form_id"] == ("newsletter" if n % 2 else "contact")
