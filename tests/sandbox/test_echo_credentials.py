"""The sandbox's echo mode (``/_sandbox/echo_credentials``): a careless vendor that repeats the request's
credential in the message of every error answer, for the masking tests of the clients. Over real HTTP."""

from __future__ import annotations

import httpx
import pytest

WRONG = "wrong-credential-0123456789"
UNAUTHORIZED = [
    # service, path, headers presenting WRONG, where the vendor puts its message
    ("hubspot", "/hubspot/crm/v3/objects/contacts", {"Authorization": f"Bearer {WRONG}"}, ("message",)),
    ("brevo", "/brevo/v3/contacts", {"api-key": WRONG}, ("message",)),
    ("calendly", "/calendly/users/me", {"Authorization": f"Bearer {WRONG}"}, ("message",)),
    ("stripe", "/stripe/v1/events", {"Authorization": f"Bearer {WRONG}"}, ("error", "message")),
]


def message(body: dict, where: tuple[str, ...]) -> str:
    for name in where:
        body = body[name]
    return str(body)


@pytest.mark.parametrize(("service", "path", "headers", "where"), UNAUTHORIZED, ids=[u[0] for u in UNAUTHORIZED])
def test_a_401_echoes_the_presented_credential_only_while_echo_mode_is_on(
        sandbox_url: str, service: str, path: str, headers: dict, where: tuple[str, ...]) -> None:
    quiet = httpx.get(sandbox_url + path, headers=headers)
    httpx.post(f"{sandbox_url}/_sandbox/echo_credentials", json={"on": True, "service": service}).raise_for_status()
    echoed = httpx.get(sandbox_url + path, headers=headers)
    state = httpx.get(f"{sandbox_url}/_sandbox/echo_credentials").json()
    httpx.post(f"{sandbox_url}/_sandbox/reset").raise_for_status()
    after_reset = httpx.get(sandbox_url + path, headers=headers)

    assert quiet.status_code == echoed.status_code == 401
    assert WRONG not in quiet.text and WRONG not in after_reset.text
    assert WRONG in message(echoed.json(), where)
    assert state[service] == {"on": True, "echoed": 1}
    assert not any(other["on"] for name, other in state.items() if name != service)


def test_injected_faults_and_per_row_errors_echo_the_credential_too(sandbox_url: str) -> None:
    admin = f"{sandbox_url}/_sandbox"
    hubspot = httpx.Client(base_url=sandbox_url + "/hubspot", headers={"Authorization": "Bearer pat-sandbox"})
    httpx.post(f"{admin}/echo_credentials", json={"on": True}).raise_for_status()
    upsert = {"inputs": [{"idProperty": "email", "id": "a@example.com", "properties": {"no_such": "x"}}]}

    partial = hubspot.post("/crm/v3/objects/contacts/batch/upsert", json=upsert)
    httpx.post(f"{admin}/faults", json={"service": "hubspot", "rate_500": 1}).raise_for_status()
    failed = hubspot.get("/crm/v3/objects/contacts")
    httpx.post(f"{admin}/faults", json={"service": "hubspot", "rate_429": 1}).raise_for_status()
    limited = hubspot.get("/crm/v3/objects/contacts")
    hubspot.close()

    assert partial.status_code == 207 and "pat-sandbox" in partial.json()["errors"][0]["message"]
    assert failed.status_code == 500 and "pat-sandbox" in failed.json()["message"]
    assert limited.status_code == 429 and "pat-sandbox" in limited.json()["message"]
    assert "retry-after" in limited.headers


def test_the_switch_rejects_a_bad_body_or_service(sandbox_url: str) -> None:
    switch = f"{sandbox_url}/_sandbox/echo_credentials"

    assert httpx.post(switch, json={"on": "yes"}).status_code == 400
    assert httpx.post(switch, json={"on": True, "service": "salesforce"}).status_code == 400
