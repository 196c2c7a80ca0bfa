"""Brevo API v3 destination client: attributes, lists, contact upserts, list members, transactional email
(https://developers.brevo.com/docs/how-it-works).

Contacts go through ``POST /contacts/import`` with a JSON body. Why import rather than ``/contacts/batch``
for existing contacts plus one ``POST /contacts`` per new one: the contacts endpoints share 10 requests per
second, and one import carries thousands of contacts, creates and updates alike, where the other path
costs a call per 100 updates and a call per new contact (a first sync of 100,000 contacts would take
hours). What import gives up is an answer per row: it silently drops unknown attributes and values of
the wrong type, and skips the rows it finds invalid. So every row is checked here first (against the
account's attribute registry, and its email against the shape of an address Brevo surely refuses) and
rejected with a reason instead. Imports are asynchronous: ``/processes/{id}`` is polled with pauses that
start short and grow (that endpoint has a small hourly quota) until the process is ``completed``. A
completed import lists the rows Brevo skipped in report files (``info.import``: invalid emails,
duplicates, ...), read here, so such a row is rejected with Brevo's reason and only the others are
accepted. An import still running when the poll budget is spent, or whose report cannot be read, leaves
its rows unconfirmed (``maybe_applied``): they are sent again next run, which an upsert allows.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    brevo_limits,
)
from vendor_http import ApiError

BASE_URL = "https://api.brevo.com/v3"
FOLDER = "Lifecycle"
ALL_CONTACTS_LIST = "Lifecycle contacts"
LIST_CHANGE_LIMIT = 150
IMPORT_MAX_ROWS = 10_000
IMPORT_MAX_BYTES = 8_000_000  # Brevo caps jsonBody at 10 MB and recommends 8 MB
LISTS_PAGE = 50
EVENTS_PAGE = 2500
MESSAGE_VERSIONS_MAX = 1000
"""Brevo's cap on ``messageVersions`` per ``POST /smtp/email``
(https://developers.brevo.com/docs/send-a-transactional-email)."""
EMAIL_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
TOP_LEVEL_DOMAIN = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")
SENT_EVENTS = ("requests", "delivered")
IMPORT_IN_PROGRESS = ("queued", "in_process", "processing")
IMPORT_FIRST_PAUSE = 0.25
IMPORT_MAX_PAUSE = 30.0

LIFECYCLE_ATTRIBUTES: dict[str, str] = {
    "FIRSTNAME": "text",
    "LASTNAME": "text",
    "SEGMENT": "text",
    "PRIMARY_AUDIENCE": "text",
    "FORM_SOURCE": "text",
    "ORIGINAL_SOURCE": "text",
    "LATEST_SOURCE": "text",
    "IS_CLIENT": "boolean",
    "DEMO_BOOKED": "boolean",
    "DEMO_DATE": "date",
    "DEMO_EVENT_NAME": "text",
    "WEBINAR_HISTORY": "text",
    "ENGAGEMENT_TIER": "text",
    "CUSTOMER_STATUS": "text",
}
"""The contact attributes the pipeline writes, with their Brevo types (docs/field-names.md)."""


class InvalidValue(ValueError):
    """A value that does not fit its attribute's type; Brevo would drop it without a word."""


def attribute_value(type_: str | None, value: Any) -> Any:
    """A value in the JSON form Brevo stores for the attribute type (dates as ``YYYY-MM-DD``)."""
    if type_ == "text":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidValue(f"expected text, got {type(value).__name__}")
        return str(value)
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise InvalidValue(f"expected a boolean, got {value!r}")
    if type_ == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidValue(f"expected a number, got {value!r}") from None
    if type_ == "date":
        if isinstance(value, datetime):
            return (value.astimezone(UTC) if value.tzinfo else value).date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise InvalidValue(f"expected a date (YYYY-MM-DD or ISO 8601), got {value!r}") from None
            return (moment.astimezone(UTC) if moment.tzinfo else moment).date().isoformat()
        raise InvalidValue(f"expected a date, got {type(value).__name__}")
    return value


def email_problem(email: str) -> str | None:
    """Why no mail system takes this address, or None.

    The shape of a mailbox on a public host: a dot-atom local part of at most 64 characters (no quoted
    forms, no leading, trailing or doubled dot), host name labels of letters, digits and inner hyphens
    (at most 63 each, two at least), an alphabetic or punycode top-level domain, 254 characters in all.
    Brevo may refuse more than this (its exact rule is not published); its import report says which.
    """
    if len(email) > 254:
        return "longer than 254 characters"
    local, at, domain = email.rpartition("@")
    if not (at and local and domain):
        return "not of the form local-part@domain"
    if len(local) > 64 or not EMAIL_LOCAL_PART.fullmatch(local):
        return "the part before @ is not a valid mailbox name"
    labels = domain.split(".")
    if len(labels) < 2 or not all(HOST_LABEL.fullmatch(label) for label in labels):
        return "the domain is not a valid host name"
    if not TOP_LEVEL_DOMAIN.fullmatch(labels[-1]):
        return "the top-level domain is not valid"
    return None


class ReportUnavailable(RuntimeError):
    """An import's report of skipped rows could not be read, so which rows Brevo took is unknown."""


def _report_rows(text: str) -> list[tuple[str, str]]:
    """(lowercase email, reason) per line of an import report: a CSV with a header naming an ``EMAIL``
    column and maybe a ``REASON`` (or ``ERROR``) one, separated by ``;`` as Brevo's own CSVs are, or ``,``."""
    header = text.partition("\n")[0]
    reader = csv.DictReader(io.StringIO(text), delimiter=";" if header.count(";") >= header.count(",") else ",")
    columns = {name.strip().upper(): name for name in reader.fieldnames or []}
    if "EMAIL" not in columns:
        raise ReportUnavailable(f"no EMAIL column in its header {header[:200]!r}")
    reason = columns.get("REASON") or columns.get("ERROR")
    rows = []
    for row in reader:
        email = str(row[columns["EMAIL"]] or "").strip().lower()
        rows.append((email, str(row.get(reason) or "").strip() if reason else ""))
    return rows


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BrevoClient(DestinationClient):
    """A client of the real Brevo API (base URL configurable, e.g. the sandbox's ``/brevo/v3``).

    Rate-limit buckets follow Brevo's: all ``/contacts/*`` share one, ``/smtp/email`` has its own, other
    ``/smtp/*`` another, and everything else (``/processes``) the last. ``mask``: other secrets to keep out
    of errors, logs and reasons (the API key always is), should Brevo echo one.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = BASE_URL,
        *,
        mask: Iterable[str] = (),
        policy: RetryPolicy = DEFAULT_POLICY,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        import_poll_seconds: float = 600.0,
    ) -> None:
        self.http = Transport(
            "brevo",
            base_url,
            {"api-key": api_key},
            secrets=(api_key, *mask),
            limits=brevo_limits,
            policy=policy,
            transport=transport,
            sleep=sleep,
        )
        self._sleep = sleep
        self.import_poll_seconds = import_poll_seconds
        # Report files are download links of their own (elsewhere than the API): never sent the API key.
        self._downloads = httpx.Client(timeout=policy.timeout, transport=transport, follow_redirects=True)
        self._attributes: dict[str, str | None] | None = None
        self._lists: dict[str, int] = {}

    def close(self) -> None:
        self._downloads.close()
        super().close()

    # ----- attributes --------------------------------------------------------------------------------

    def attribute_types(self) -> dict[str, str | None]:
        """The account's contact attributes and their types (read once, kept up to date by us)."""
        if self._attributes is None:
            _, body = self.http.request("GET", "/contacts/attributes", bucket="contacts")
            self._attributes = {a["name"]: a.get("type") for a in (body or {}).get("attributes", [])}
        return self._attributes

    def ensure_attributes(self, definitions: Mapping[str, str] = LIFECYCLE_ATTRIBUTES) -> list[str]:
        """Create the missing normal attributes (``{NAME: text|boolean|date|float}``); returns their names.

        An attribute that exists with another type is left alone: changing it would need a delete, which
        loses its values.
        """
        known = self.attribute_types()
        created = []
        for name, type_ in definitions.items():
            name = name.upper()
            if name in known:
                continue
            try:
                self.http.request("POST", "/contacts/attributes/normal/{name}", path={"name": name},
                                  json_body={"type": type_}, bucket="contacts")
            except ApiError as error:
                if error.category != "duplicate_parameter":
                    raise
            known[name] = type_
            created.append(name)
        return created

    # ----- lists -------------------------------------------------------------------------------------

    def ensure_lists(self, names: Iterable[str]) -> dict[str, int]:
        """Ids of the named lists, creating the missing ones in the folder ``Lifecycle``."""
        wanted = list(dict.fromkeys(names))
        if any(name not in self._lists for name in wanted):
            for item in self._pages("/contacts/lists", "lists", LISTS_PAGE):
                self._lists.setdefault(item["name"], int(item["id"]))
        missing = [name for name in wanted if name not in self._lists]
        if missing:
            folder_id = self._folder_id()
            for name in missing:
                _, body = self.http.request("POST", "/contacts/lists", json_body={"name": name, "folderId": folder_id},
                                            bucket="contacts")
                self._lists[name] = int(body["id"])
        return {name: self._lists[name] for name in wanted}

    def _folder_id(self) -> int:
        for folder in self._pages("/contacts/folders", "folders", LISTS_PAGE):
            if folder.get("name") == FOLDER:
                return int(folder["id"])
        _, body = self.http.request("POST", "/contacts/folders", json_body={"name": FOLDER}, bucket="contacts")
        return int(body["id"])

    def _pages(self, template: str, key: str, limit: int) -> Iterable[dict]:
        """Offset paging of the contacts family's listings, until ``count`` items were seen."""
        offset = 0
        while True:
            _, body = self.http.request("GET", template, params={"limit": limit, "offset": offset, "sort": "asc"},
                                        bucket="contacts")
            items = (body or {}).get(key) or []
            yield from items
            offset += len(items)
            if not items or offset >= int((body or {}).get("count", 0)):
                return

    # ----- contacts ----------------------------------------------------------------------------------

    def upsert_contacts(self, rows: Iterable[Mapping[str, Any]], list_ids: Sequence[int] | None = None
                        ) -> list[RowOutcome]:
        """Create or update contacts by email; one outcome per row, in input order.

        A row is ``{"email": ..., ATTRIBUTE: value, ...}``; ``None`` clears an attribute. Brevo's import
        must put contacts in a list: ``list_ids``, by default the list ``Lifecycle contacts``. Rows that
        clear something go in their own imports with ``emptyContactsAttributes: true`` (an empty value then
        erases); all others with ``false``, so nothing we did not send is ever touched.
        """
        targets = list(list_ids) if list_ids else [self.ensure_lists([ALL_CONTACTS_LIST])[ALL_CONTACTS_LIST]]
        types = self.attribute_types()
        outcomes: dict[int, RowOutcome] = {}
        plain: list[tuple[int, str, dict]] = []
        clearing: list[tuple[int, str, dict]] = []
        seen: set[str] = set()
        for index, row in enumerate(rows):
            email = str(row.get("email") or "").strip().lower()
            problem, code, item = self._check_row(email, row, types, seen)
            if problem:
                outcomes[index] = RowOutcome(email, "rejected", error=problem, code=code)
                continue
            seen.add(email)
            clears = any(v == "" for v in item["attributes"].values())
            (clearing if clears else plain).append((index, email, item))
        for group, erase in ((plain, False), (clearing, True)):
            for chunk in self._import_chunks(group):
                for index, outcome in self._import(chunk, targets, erase):
                    outcomes[index] = outcome
        return [outcomes[i] for i in sorted(outcomes)]

    @staticmethod
    def _check_row(email: str, row: Mapping[str, Any], types: Mapping[str, str | None], seen: set[str]
                   ) -> tuple[str | None, str | None, dict]:
        """(problem, code, import item) for one row; the checks Brevo's import skips silently."""
        problem = email_problem(email)
        if problem:
            return f"invalid email address {email!r}: {problem}", "INVALID_EMAIL", {}
        if email in seen:
            return "email repeated in the same sync", "DUPLICATE_ROW", {}
        attributes: dict[str, Any] = {}
        for name, value in row.items():
            if name == "email":
                continue
            if name not in types:
                return f"attribute {name} does not exist in Brevo", "UNKNOWN_ATTRIBUTE", {}
            if value is None:
                attributes[name] = ""
                continue
            try:
                attributes[name] = attribute_value(types[name], value)
            except InvalidValue as error:
                return f"{name}: {error}", "INVALID_VALUE", {}
        return None, None, {"email": email, "attributes": attributes}

    @staticmethod
    def _import_chunks(items: Sequence[tuple[int, str, dict]]) -> Iterable[list[tuple[int, str, dict]]]:
        chunk: list[tuple[int, str, dict]] = []
        size = 0
        for entry in items:
            entry_size = len(json.dumps(entry[2])) + 1
            if chunk and (len(chunk) >= IMPORT_MAX_ROWS or size + entry_size > IMPORT_MAX_BYTES):
                yield chunk
                chunk, size = [], 0
            chunk.append(entry)
            size += entry_size
        if chunk:
            yield chunk

    def _import(self, chunk: Sequence[tuple[int, str, dict]], list_ids: list[int], erase: bool
                ) -> list[tuple[int, RowOutcome]]:
        _, body = self.http.request("POST", "/contacts/import", bucket="contacts", json_body={
            "jsonBody": [item for _, _, item in chunk],
            "listIds": list_ids,
            "updateExistingContacts": True,
            "emptyContactsAttributes": erase,
            "disableNotification": True,
        })
        process_id = (body or {}).get("processId")
        if process_id is None:
            return self._unconfirmed(chunk, f"Brevo answered the import without a process id: {body!r:.200}")
        process = self._wait_for_process(process_id)
        status = process.get("status")
        if status in IMPORT_IN_PROGRESS:
            return self._unconfirmed(chunk, f"import process {process_id} still {status} when polling stopped")
        if status != "completed":
            reason = f"import process {process_id} ended with status {status}"
            return [(index, RowOutcome(email, "rejected", error=reason, code="IMPORT_FAILED"))
                    for index, email, _ in chunk]
        try:
            skipped = self._skipped_rows(process)
        except ReportUnavailable as error:
            return self._unconfirmed(chunk, f"import process {process_id}: its report could not be read: {error}")
        outcomes = []
        for index, email, _ in chunk:
            if email in skipped:
                kind, reason = skipped[email]
                error = f"Brevo skipped the row in import process {process_id}"
                outcomes.append((index, RowOutcome(email, "rejected", error=f"{error}: {reason}" if reason else error,
                                                   code=kind)))
            else:
                outcomes.append((index, RowOutcome(email, "accepted")))
        return outcomes

    @staticmethod
    def _unconfirmed(chunk: Sequence[tuple[int, str, dict]], reason: str) -> list[tuple[int, RowOutcome]]:
        """Rows of an import whose fate is unknown: not synced, so they are sent again next run."""
        reason += "; the rows are sent again next run"
        return [(index, RowOutcome(email, "maybe_applied", error=reason)) for index, email, _ in chunk]

    def _wait_for_process(self, process_id: int) -> dict:
        """The import process once it left the queue, or as it stood when the poll budget ran out. Each look
        follows a pause of 0.25, 0.5, 1 ... 30 s: an import is never done at once, and the endpoint's
        quota is hourly."""
        waited, pause = 0.0, IMPORT_FIRST_PAUSE
        while True:
            self._sleep(pause)
            waited += pause
            _, body = self.http.request("GET", "/processes/{process_id}", path={"process_id": process_id},
                                        bucket="other")
            process = body if isinstance(body, dict) else {}
            if process.get("status") not in IMPORT_IN_PROGRESS or waited >= self.import_poll_seconds:
                return process
            pause = min(IMPORT_MAX_PAUSE, pause * 2)

    def _skipped_rows(self, process: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
        """``{email: (report kind, reason)}`` of the rows a completed import skipped, from the report
        files its ``info.import`` links (none linked: nothing was skipped)."""
        reports = ((process.get("info") or {}).get("import")) or {}
        skipped: dict[str, tuple[str, str]] = {}
        for kind, url in reports.items():
            if url:
                for email, reason in _report_rows(self._download(str(url))):
                    skipped.setdefault(email, (kind, reason))
        return skipped

    def _download(self, url: str) -> str:
        """A report file, retried with backoff on network errors and 5xx (no API key goes there)."""
        policy = self.http.policy
        for attempt in range(1, policy.max_attempts + 1):
            self.stats.calls["GET import report"] += 1
            try:
                response = self._downloads.get(url)
            except httpx.TransportError as error:
                problem = type(error).__name__
            else:
                if response.status_code < 400:
                    return response.text
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500:
                    break
            if attempt < policy.max_attempts:
                self._sleep(policy.backoff(attempt))
        raise ReportUnavailable(problem)

    # ----- list members ------------------------------------------------------------------------------

    def add_to_list(self, list_id: int, emails: Iterable[str]) -> list[RowOutcome]:
        """Add existing contacts to a list, 150 per call. Brevo reports a failure, without saying which,
        for an address that is not a contact or is already in the list."""
        return self._change_members(list_id, emails, "add", "not a contact, or already in the list")

    def remove_from_list(self, list_id: int, emails: Iterable[str]) -> list[RowOutcome]:
        """Remove contacts from a list, 150 per call; a failure is a non-contact or a non-member."""
        return self._change_members(list_id, emails, "remove", "not a contact, or not in the list")

    def _change_members(self, list_id: int, emails: Iterable[str], action: str, failure: str
                        ) -> list[RowOutcome]:
        wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
        outcomes = []
        for chunk in _chunks(wanted, LIST_CHANGE_LIMIT):
            try:
                _, body = self.http.request("POST", "/contacts/lists/{list_id}/contacts/" + action,
                                            path={"list_id": list_id}, json_body={"emails": list(chunk)},
                                            bucket="contacts")
            except ApiError as error:
                # Brevo answers 400 when not one address of the call could be changed.
                if error.status != 400 or error.category != "invalid_parameter":
                    raise
                outcomes.extend(RowOutcome(e, "rejected", error=error.vendor_message, code="invalid_parameter")
                                for e in chunk)
                continue
            done = {str(e).lower() for e in ((body or {}).get("contacts") or {}).get("success", [])}
            outcomes.extend(
                RowOutcome(e, "accepted") if e in done else RowOutcome(e, "rejected", error=failure)
                for e in chunk
            )
        return outcomes

    # ----- transactional email -----------------------------------------------------------------------

    def send_transactional(
        self,
        to: str | Mapping[str, str],
        template_id: int,
        params: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
    ) -> str:
        """Send one templated email; returns Brevo's messageId.

        Never retried once it may have left: a lost answer raises ``MaybeApplied``, and the caller looks
        for the send with ``find_sent(tag)`` (give each message a unique tag) before sending again.
        """
        recipient = {"email": to} if isinstance(to, str) else dict(to)
        body: dict[str, Any] = {"to": [recipient], "templateId": template_id, "params": dict(params or {})}
        if tags:
            body["tags"] = list(tags)
        _, answer = self.http.request("POST", "/smtp/email", json_body=body, bucket="smtp_email", idempotent=False)
        return str(answer["messageId"])

    def send_batch(
        self,
        template_id: int,
        versions: Sequence[tuple[str | Mapping[str, str], Mapping[str, Any]]],
        tags: Sequence[str] = (),
    ) -> list[str]:
        """Send one templated email per ``(to, params)`` version in a single call (``messageVersions``);
        returns Brevo's messageIds in version order.

        Brevo accepts or rejects the call as a whole (one bad version: 400 for all), and the tags belong to
        the call, so every email of it carries the same tags. Never retried once it may have left: a lost
        answer, or an answer without one messageId per version, raises ``MaybeApplied``, and the caller
        looks for the emails with ``find_sent_to(tag)`` (give each call a unique tag) before sending again.
        """
        if not 1 <= len(versions) <= MESSAGE_VERSIONS_MAX:
            raise ValueError(f"a batch holds 1 to {MESSAGE_VERSIONS_MAX} versions, not {len(versions)}")
        body: dict[str, Any] = {"templateId": template_id, "messageVersions": [
            {"to": [{"email": to} if isinstance(to, str) else dict(to)], "params": dict(params)}
            for to, params in versions
        ]}
        if tags:
            body["tags"] = list(tags)
        _, answer = self.http.request("POST", "/smtp/email", json_body=body, bucket="smtp_email", idempotent=False)
        message_ids = (answer or {}).get("messageIds")
        if not isinstance(message_ids, list) or len(message_ids) != len(versions):
            raise MaybeApplied("brevo", "POST", "/smtp/email", 201,
                               f"expected {len(versions)} messageIds, got {message_ids!r:.200}", answer)
        return [str(message_id) for message_id in message_ids]

    def find_sent(self, tag: str) -> list[str]:
        """messageIds of the emails Brevo accepted (``requests``/``delivered`` events) carrying ``tag``."""
        return list(dict.fromkeys(message_id for message_id, _ in self.find_sent_to(tag)))

    def find_sent_to(self, tag: str) -> list[tuple[str, str]]:
        """``(messageId, recipient email)`` of each email Brevo accepted carrying ``tag``, once each, oldest
        first; the email is lowercase, as Brevo reports it. A batch sends one email per version with the
        same tags, so the recipient tells its emails apart."""
        found: dict[tuple[str, str], None] = {}
        offset = 0
        while True:
            _, body = self.http.request("GET", "/smtp/statistics/events", bucket="smtp_other", params={
                "tags": json.dumps([tag]), "limit": EVENTS_PAGE, "offset": offset, "sort": "asc",
            })
            events = (body or {}).get("events") or []
            for event in events:
                carries = tag in (event.get("tags") or [event.get("tag")])
                if carries and event.get("event") in SENT_EVENTS and event.get("messageId"):
                    found[(str(event["messageId"]), str(event.get("email") or "").strip().lower())] = None
            if len(events) < EVENTS_PAGE:
                return list(found)
            offset += len(events)
