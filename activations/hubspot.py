"""HubSpot CRM v3 destination client: properties, contact upserts and reads, notes
(https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts).

Pure data in and out: rows are dicts, answers are ``RowOutcome``s and small dataclasses; the engine reads
the warehouse and decides what to send. Batches go at HubSpot's limit of 100 inputs; a batch refused as a
whole (400 ``VALIDATION_ERROR``) is bisected down to the offending rows, so one bad row never holds back
the others, and per-row failures of a 207 answer are reported with HubSpot's own message and code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx

from activations.http import (
    DEFAULT_POLICY,
    DestinationClient,
    MaybeApplied,
    RetryPolicy,
    RowOutcome,
    Transport,
    hubspot_limits,
)
from vendor_http import ApiError

BASE_URL = "https://api.hubapi.com"
BATCH_LIMIT = 100
GROUP = "lifecycle"
NOTE_TO_CONTACT = 202
PROPERTIES = "/crm/v3/properties/contacts"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"
BATCH_READ = "/crm/v3/objects/contacts/batch/read"
NOTES_BATCH_CREATE = "/crm/v3/objects/notes/batch/create"


def _enumeration(name: str, label: str, values: Sequence[str]) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "enumeration",
        "fieldType": "select",
        "options": [{"label": v.replace("_", " ").capitalize(), "value": v} for v in values],
    }


def _text(name: str, label: str) -> dict:
    return {"name": name, "label": label, "type": "string", "fieldType": "text"}


def _datetime(name: str, label: str) -> dict:
    return {"name": name, "label": label, "type": "datetime", "fieldType": "date"}


LIFECYCLE_PROPERTIES: tuple[dict, ...] = (
    _enumeration("customer_segment", "Customer segment", ("B2B", "B2C")),
    _text("primary_audience", "Primary audience"),
    _text("form_source", "Form source"),
    _text("original_touch_source", "Original touch source"),
    _text("original_touch_campaign", "Original touch campaign"),
    _datetime("original_touch_at", "Original touch at"),
    _text("latest_touch_source", "Latest touch source"),
    _text("latest_touch_campaign", "Latest touch campaign"),
    _datetime("latest_touch_at", "Latest touch at"),
    _text("webinar_history", "Webinar history"),
    _datetime("demo_booked_at", "Demo booked at"),
    _text("demo_event_name", "Demo event name"),
    _enumeration("customer_status", "Customer status", ("active", "churned")),
    _enumeration("engagement_tier", "Engagement tier", ("most_engaged", "engaged", "quiet", "new")),
    {"name": "hs_lead_status", "options": [{"label": "Demo scheduled", "value": "DEMO_SCHEDULED"}]},
)
"""Our own properties (group ``lifecycle``, docs/field-names.md) and the ``DEMO_SCHEDULED`` lead status option.
An entry for an existing property only adds its missing options."""


@dataclass(frozen=True)
class Note:
    """One CRM note to create on a contact: ``key`` is the engine's own id for it (reported back)."""

    key: str
    contact_id: str
    body: str
    timestamp: str | datetime


@dataclass(frozen=True)
class StoredNote:
    id: str
    body: str | None
    timestamp: str | None


@dataclass(frozen=True)
class Contact:
    id: str
    properties: dict[str, str | None]


@dataclass
class PropertyChanges:
    """What ``ensure_properties`` had to write; empty when everything already existed."""

    created: list[str] = field(default_factory=list)
    options_added: dict[str, list[str]] = field(default_factory=dict)


def property_value(value: Any) -> str:
    """HubSpot wants every value as a string; ``""`` clears (HubSpot's batch update reference)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _instant(value: Any) -> datetime | None:
    """A note timestamp as a comparable instant (HubSpot echoes it reformatted)."""
    if not isinstance(value, str):
        return None
    if value.isdigit():
        # epoch milliseconds; checked first because fromisoformat reads 13 digits as a compact ISO date
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _error_code(error: Mapping[str, Any]) -> str | None:
    """The most specific code of a batch error: the first property problem, else the category."""
    details = error.get("errors")
    if isinstance(details, list) and details and isinstance(details[0], dict) and details[0].get("code"):
        return str(details[0]["code"])
    return error.get("category")


class HubSpotClient(DestinationClient):
    """A client of the real HubSpot API (base URL configurable, e.g. the sandbox's ``/hubspot``).

    ``mask``: other secrets to keep out of errors, logs and reasons (the token always is), should HubSpot
    echo one.
    """

    def __init__(
        self,
        token: str,
        base_url: str = BASE_URL,
        *,
        mask: Iterable[str] = (),
        policy: RetryPolicy = DEFAULT_POLICY,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = Transport(
            "hubspot",
            base_url,
            {"Authorization": f"Bearer {token}"},
            secrets=(token, *mask),
            limits=hubspot_limits,
            policy=policy,
            transport=transport,
            sleep=sleep,
        )

    # ----- properties --------------------------------------------------------------------------------

    def ensure_properties(self, definitions: Iterable[Mapping[str, Any]] = LIFECYCLE_PROPERTIES) -> PropertyChanges:
        """Create missing properties (group ``lifecycle``) and add missing enumeration options.

        One GET when nothing is missing. HubSpot replaces an enumeration's whole option list on PATCH,
        so the existing options are sent back with the new ones.
        """
        changes = PropertyChanges()
        _, body = self.http.request("GET", PROPERTIES)
        registry = {p["name"]: p for p in (body or {}).get("results", [])}
        missing = [dict(d) for d in definitions if d["name"] not in registry]
        for definition in definitions:
            existing = registry.get(definition["name"])
            if existing is None or not definition.get("options"):
                continue
            have = {o["value"] for o in existing.get("options", [])}
            new = [o for o in definition["options"] if o["value"] not in have]
            if not new:
                continue
            kept = [
                {k: o[k] for k in ("label", "value", "displayOrder", "hidden", "description") if k in o}
                for o in existing.get("options", [])
            ]
            added = [{"hidden": False, **o, "displayOrder": len(kept) + i} for i, o in enumerate(new)]
            self.http.request("PATCH", PROPERTIES + "/{name}", path={"name": definition["name"]},
                              json_body={"options": kept + added})
            changes.options_added[definition["name"]] = [o["value"] for o in new]
        if missing:
            self._ensure_group()
            for chunk in _chunks(missing, BATCH_LIMIT):
                inputs = [{"groupName": GROUP, "formField": False, **d} for d in chunk]
                _, answer = self.http.request("POST", PROPERTIES + "/batch/create", json_body={"inputs": inputs})
                for error in (answer or {}).get("errors", []):
                    if error.get("category") != "CONFLICT":  # created meanwhile by someone else: fine
                        raise ApiError("hubspot", "POST", PROPERTIES + "/batch/create", 207,
                                       str(error.get("message")), error)
                changes.created.extend(r["name"] for r in (answer or {}).get("results", []))
        return changes

    def _ensure_group(self) -> None:
        """HubSpot refuses a property whose group does not exist, so the group comes first; 409 means it
        exists already. Any other refusal (a missing scope, a wrong base URL) is raised here, where it
        names the real cause, rather than as a failure of every property after it."""
        try:
            self.http.request("POST", PROPERTIES + "/groups",
                              json_body={"name": GROUP, "label": "Lifecycle", "displayOrder": -1})
        except ApiError as error:
            if error.status != 409:
                raise

    # ----- contacts ----------------------------------------------------------------------------------

    def upsert_contacts(self, rows: Iterable[Mapping[str, Any]]) -> list[RowOutcome]:
        """Create or update contacts by email, 100 per call; one outcome per row, in input order.

        A row is ``{"email": ..., <property>: value, ...}``; ``None`` clears a property. Rows without an
        email, or repeating an email already in this call, are rejected here (HubSpot would refuse the
        whole batch for a duplicate id).
        """
        outcomes: dict[int, RowOutcome] = {}
        inputs: list[tuple[int, str, dict]] = []
        seen: set[str] = set()
        for index, row in enumerate(rows):
            email = str(row.get("email") or "").strip().lower()
            if not email:
                outcomes[index] = RowOutcome("", "rejected", error="row has no email", code="MISSING_EMAIL")
            elif email in seen:
                outcomes[index] = RowOutcome(email, "rejected", error="email repeated in the same sync",
                                             code="DUPLICATE_ROW")
            else:
                seen.add(email)
                properties = {k: property_value(v) for k, v in row.items() if k != "email"}
                inputs.append((index, email, {"idProperty": "email", "id": email, "properties": properties}))
        for chunk in _chunks(inputs, BATCH_LIMIT):
            for (index, _, _), outcome in zip(chunk, self._bisected(UPSERT, chunk, self._upsert_answer), strict=True):
                outcomes[index] = outcome
        return [outcomes[i] for i in sorted(outcomes)]

    def _bisected(
        self,
        template: str,
        chunk: Sequence[tuple[int, str, dict]],
        read: Callable[[Sequence[tuple[int, str, dict]], Any], list[RowOutcome]],
        *,
        idempotent: bool = True,
    ) -> list[RowOutcome]:
        """Send one batch; if HubSpot refuses it as a whole for validation, split it in halves until the
        refused rows stand alone, each rejected with HubSpot's reason."""
        try:
            _, body = self.http.request("POST", template, json_body={"inputs": [i for _, _, i in chunk]},
                                        idempotent=idempotent)
        except MaybeApplied as error:
            return [RowOutcome(key, "maybe_applied", error=str(error)) for _, key, _ in chunk]
        except ApiError as error:
            if error.status != 400 or error.category != "VALIDATION_ERROR":
                raise
            if len(chunk) == 1:
                code = _error_code(error.body) if isinstance(error.body, dict) else None
                return [RowOutcome(chunk[0][1], "rejected", error=error.vendor_message, code=code)]
            middle = len(chunk) // 2
            return (self._bisected(template, chunk[:middle], read, idempotent=idempotent)
                    + self._bisected(template, chunk[middle:], read, idempotent=idempotent))
        return read(chunk, body)

    @staticmethod
    def _upsert_answer(chunk: Sequence[tuple[int, str, dict]], body: Any) -> list[RowOutcome]:
        """Outcomes of a 200/207 upsert answer, matched to rows by email (results are not ordered)."""
        body = body or {}
        found: dict[str, RowOutcome] = {}
        unmatched: list[dict] = []
        for result in body.get("results", []):
            email = str((result.get("properties") or {}).get("email") or "").lower()
            outcome = RowOutcome(email, "accepted", id=str(result["id"]), created=bool(result.get("new")))
            if email:
                found[email] = outcome
            else:
                unmatched.append(result)
        for error in body.get("errors", []):
            for key in (error.get("context") or {}).get("ids", []):
                found[str(key).lower()] = RowOutcome(str(key).lower(), "rejected", error=error.get("message"),
                                                     code=_error_code(error))
        outcomes = []
        for _, email, _ in chunk:
            if email in found:
                outcomes.append(found[email])
            elif unmatched:
                result = unmatched.pop(0)
                outcomes.append(RowOutcome(email, "accepted", id=str(result["id"]), created=bool(result.get("new"))))
            else:
                outcomes.append(RowOutcome(email, "rejected", error="HubSpot returned no result for this row",
                                           code="MISSING_RESULT"))
        return outcomes

    def read_contacts(self, emails: Iterable[str], properties: Sequence[str]) -> dict[str, Contact]:
        """Current values of some properties, by lower-cased email; unknown emails are left out."""
        wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
        names = list(dict.fromkeys(["email", *properties]))
        found: dict[str, Contact] = {}
        for chunk in _chunks(wanted, BATCH_LIMIT):
            _, body = self.http.request("POST", BATCH_READ, json_body={
                "idProperty": "email", "inputs": [{"id": e} for e in chunk], "properties": names,
            })
            for result in (body or {}).get("results", []):
                values = result.get("properties") or {}
                email = str(values.get("email") or "").lower()
                if email:
                    found[email] = Contact(str(result["id"]), dict(values))
        return found

    # ----- notes -------------------------------------------------------------------------------------

    def create_notes(self, notes: Sequence[Note]) -> list[RowOutcome]:
        """Create notes associated to their contacts (type 202), 100 per call; one outcome per note.

        Batched because a first sync of a large account writes thousands of notes. Creating a note is
        not idempotent: when a batch's answer is lost its notes come back ``maybe_applied`` (keyed by
        ``Note.key``) and ``find_notes`` tells which exist before any is sent again.
        """
        inputs = [
            (index, note.key, {
                "properties": {"hs_timestamp": property_value(note.timestamp), "hs_note_body": note.body},
                "associations": [{"to": {"id": str(note.contact_id)},
                                  "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                             "associationTypeId": NOTE_TO_CONTACT}]}],
            })
            for index, note in enumerate(notes)
        ]
        outcomes: list[RowOutcome] = []
        for chunk in _chunks(inputs, BATCH_LIMIT):
            outcomes.extend(self._bisected(NOTES_BATCH_CREATE, chunk, self._notes_answer, idempotent=False))
        return outcomes

    @staticmethod
    def _notes_answer(chunk: Sequence[tuple[int, str, dict]], body: Any) -> list[RowOutcome]:
        """Match created notes to inputs by (timestamp, body): batch results are not guaranteed to be in
        input order. Identical notes are interchangeable, so ties fall back to order."""
        results = list((body or {}).get("results", []))

        def identity(properties: Mapping[str, Any]) -> tuple:
            return _instant(properties.get("hs_timestamp")), properties.get("hs_note_body")

        pool: dict[tuple, list[str]] = {}
        for result in results:
            pool.setdefault(identity(result.get("properties") or {}), []).append(str(result["id"]))
        leftovers = [str(r["id"]) for r in results if identity(r.get("properties") or {}) == (None, None)]
        outcomes = []
        for _, key, item in chunk:
            ids = pool.get(identity(item["properties"])) or leftovers
            if ids:
                outcomes.append(RowOutcome(key, "accepted", id=ids.pop(0), created=True))
            else:
                outcomes.append(RowOutcome(key, "maybe_applied", error="HubSpot returned no result for this note"))
        return outcomes

    def find_notes(self, contact_id: str) -> list[StoredNote]:
        """The notes on a contact, to reconcile notes whose creation answer was lost.

        One GET per note: the notes batch-read endpoint is not in the sandbox, and a contact holds few
        notes (one per booking, reschedule or cancellation).
        """
        _, body = self.http.request("GET", "/crm/v3/objects/contacts/{contact_id}",
                                    path={"contact_id": contact_id}, params={"associations": "notes"})
        associated = (((body or {}).get("associations") or {}).get("notes") or {}).get("results", [])
        notes = []
        for note_id in dict.fromkeys(str(a["id"]) for a in associated):
            _, note = self.http.request("GET", "/crm/v3/objects/notes/{note_id}", path={"note_id": note_id},
                                        params={"properties": "hs_note_body,hs_timestamp"})
            values = (note or {}).get("properties") or {}
            notes.append(StoredNote(note_id, values.get("hs_note_body"), values.get("hs_timestamp")))
        return notes
