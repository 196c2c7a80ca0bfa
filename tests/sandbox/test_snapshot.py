"""The sandbox's snapshot and restore (``/_sandbox/snapshot``, ``/_sandbox/restore``): every emulator's stores
back to one exact state, ids and timestamps included, for tests that replay from it (the crash suite)."""

from __future__ import annotations

import httpx

HUBSPOT = {"Authorization": "Bearer pat-sandbox"}


def state(sandbox_url: str) -> tuple:
    contacts = httpx.get(f"{sandbox_url}/hubspot/crm/v3/objects/contacts", headers=HUBSPOT).json()["results"]
    brevo = httpx.get(f"{sandbox_url}/_sandbox/brevo/emails").json()
    return [(c["id"], c["properties"]["email"], c["updatedAt"]) for c in contacts], brevo


def test_restore_brings_back_the_snapshot_state_exactly(sandbox_url: str) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/hubspot/contacts", json=[{"properties": {"email": "ann@example.com"}}]).raise_for_status()
    assert httpx.post(f"{sandbox_url}/_sandbox/snapshot").json() == {"snapshot": True}
    before = state(sandbox_url)

    httpx.post(f"{sandbox_url}/_sandbox/hubspot/contacts", json=[{"properties": {"email": "bob@example.com"}}]).raise_for_status()
    httpx.post(f"{sandbox_url}/brevo/v3/smtp/email", headers={"api-key": "xkeysib-sandbox"},
               json={"to": [{"email": "ann@example.com"}], "templateId": 1}).raise_for_status()
    assert state(sandbox_url) != before
    assert httpx.post(f"{sandbox_url}/_sandbox/restore").json() == {"restored": True}

    assert state(sandbox_url) == before
    httpx.post(f"{sandbox_url}/_sandbox/hubspot/contacts", json=[{"properties": {"email": "cy@example.com"}}]).raise_for_status()
    ids = [contact_id for contact_id, _, _ in state(sandbox_url)[0]]
    assert len(ids) == len(set(ids)) == 2, "the id counters are restored with the stores"


def test_restore_without_a_snapshot_is_refused(sandbox_url: str) -> None:
    from sandbox.app import Sandbox, create_app
    from tests.servers import serve

    with serve(create_app(Sandbox())) as fresh_url:
        answer = httpx.post(f"{fresh_url}/_sandbox/restore")
    assert answer.status_code == 409 and "snapshot" in answer.json()["error"]


def test_latency_delays_the_answer_after_the_write_is_applied(sandbox_url: str) -> None:
    """A client that gives up before a slow answer has still had its write applied (a lost answer)."""
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"service": "hubspot", "latency_seconds": 2}).raise_for_status()
    body = {"inputs": [{"id": "dee@example.com", "idProperty": "email", "properties": {"firstname": "Dee"}}]}
    try:
        httpx.post(f"{sandbox_url}/hubspot/crm/v3/objects/contacts/batch/upsert", headers=HUBSPOT, json=body,
                   timeout=0.3)
        answered = True
    except httpx.ReadTimeout:
        answered = False
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={}).raise_for_status()

    assert not answered
    contact = httpx.get(f"{sandbox_url}/_sandbox/hubspot/contacts/dee@example.com").json()
    assert contact["properties"]["firstname"] == "Dee"
