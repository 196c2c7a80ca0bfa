"""Contacts: the store (identifiers, list links, modification times) and the single-contact endpoints."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.brevo.common import (
    CONTACTS_PAGE_MAX,
    IDENTIFIER_TYPES,
    LIST_CONTACTS_PAGE_MAX,
    RELAY_IP,
    Contact,
    bad,
    brevo_error,
    int_param,
    is_int_list,
    iso,
    parse_datetime,
    utc_now,
    valid_email,
)
from sandbox.core import read_json


class ContactsApi:
    """``/v3/contacts``: create, read, update, delete, list."""

    def _touch(self, contact: Contact) -> None:
        contact.modified_at = iso(utc_now())
        self.version += 1

    def _new_contact(self, email: str | None, ext_id: str | None) -> Contact:
        moment = iso(utc_now())
        contact = Contact(next(self.ids["contact"]), email, ext_id, moment, moment)
        self.contacts[contact.id] = contact
        if email:
            self.by_email[email] = contact.id
        if ext_id:
            self.by_ext_id[ext_id] = contact.id
        self.version += 1
        return contact

    def _find(self, identifier: str, identifier_type: str | None) -> Contact | None:
        """By email, numeric id, ext_id or SMS number; without a type, guessed from the identifier's shape."""
        if identifier_type is None:
            identifier_type = (
                "email_id" if "@" in identifier else "contact_id" if identifier.isdigit() else "ext_id"
            )
        if identifier_type == "email_id":
            contact_id = self.by_email.get(identifier.strip().lower())
        elif identifier_type == "contact_id":
            contact_id = int(identifier) if identifier.isdigit() else None
        elif identifier_type == "ext_id":
            contact_id = self.by_ext_id.get(identifier)
        else:
            contact_id = next(
                (c.id for c in self.contacts.values() if c.attributes.get("SMS") == identifier), None
            )
        return self.contacts.get(contact_id) if contact_id is not None else None

    def _link(self, contact: Contact, list_id: int) -> bool:
        if list_id in contact.list_ids:
            return False
        contact.list_ids.append(list_id)
        self.members[list_id].add(contact.id)
        return True

    def _unlink(self, contact: Contact, list_id: int) -> bool:
        if list_id not in contact.list_ids:
            return False
        contact.list_ids.remove(list_id)
        self.members[list_id].discard(contact.id)
        return True

    def _unknown_lists(self, list_ids: list[int]) -> list[int]:
        return [i for i in list_ids if i not in self.lists]

    def _change_problem(self, body: dict) -> JSONResponse | None:
        """Shape checks shared by create and update."""
        if "attributes" in body and not isinstance(body["attributes"], dict):
            return bad("invalid_parameter", "attributes must be an object")
        for key in ("listIds", "unlinkListIds"):
            if key in body:
                if not is_int_list(body[key]):
                    return bad("invalid_parameter", f"{key} must be a list of list ids")
                unknown = self._unknown_lists(body[key])
                if unknown:
                    return bad("invalid_parameter", f"{key}: list ids {unknown} do not exist")
        for key in ("emailBlacklisted", "smsBlacklisted"):
            if key in body and not isinstance(body[key], bool):
                return bad("invalid_parameter", f"{key} must be a boolean")
        return None

    def _change(self, contact: Contact, body: dict) -> None:
        """Apply attributes, list links and blocklist flags from a create/update body."""
        self._apply_attributes(contact, body.get("attributes") or {})
        for list_id in body.get("listIds") or []:
            self._link(contact, list_id)
        for list_id in body.get("unlinkListIds") or []:
            self._unlink(contact, list_id)
        if "emailBlacklisted" in body:
            contact.email_blacklisted = body["emailBlacklisted"]
        if "smsBlacklisted" in body:
            contact.sms_blacklisted = body["smsBlacklisted"]
        self._touch(contact)

    # ----- contacts ----------------------------------------------------------------------------------

    async def create_contact(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        email = body.get("email")
        ext_id = body.get("ext_id")
        sms = (body.get("attributes") or {}).get("SMS") if isinstance(body.get("attributes"), dict) else None
        if not email and not ext_id and not sms:
            return bad(
                "missing_parameter", "An email or SMS phone number is mandatory to create a new contact."
            )
        if email is not None and not valid_email(email):
            return bad("invalid_parameter", "Invalid email address")
        if ext_id is not None and not isinstance(ext_id, str):
            return bad("invalid_parameter", "ext_id must be a string")
        problem = self._change_problem(body)
        if problem:
            return problem
        email = email.strip().lower() if email else None
        existing = (self._find(email, "email_id") if email else None) or (
            self._find(ext_id, "ext_id") if ext_id else None
        )
        if existing is not None:
            if body.get("updateEnabled") is not True:
                return bad("duplicate_parameter", "Contact already exist")
            if ext_id and ext_id not in self.by_ext_id:
                self.by_ext_id.pop(existing.ext_id or "", None)
                existing.ext_id = ext_id
                self.by_ext_id[ext_id] = existing.id
            self._change(existing, body)
            return Response(status_code=204)
        contact = self._new_contact(email, ext_id)
        self._change(contact, body)
        contact.modified_at = contact.created_at
        return JSONResponse({"id": contact.id}, status_code=201)

    def _identified(self, request: Request) -> Contact | JSONResponse:
        identifier_type = request.query_params.get("identifierType")
        if identifier_type is not None and identifier_type not in IDENTIFIER_TYPES:
            return bad("invalid_parameter", f"identifierType must be one of {', '.join(IDENTIFIER_TYPES)}")
        contact = self._find(request.path_params["identifier"], identifier_type)
        if contact is None:
            return brevo_error(404, "document_not_found", "Contact does not exist")
        return contact

    async def get_contact(self, request: Request) -> Response:
        contact = self._identified(request)
        if isinstance(contact, JSONResponse):
            return contact
        return JSONResponse({**contact.public(), "statistics": self._statistics(contact)})

    def _statistics(self, contact: Contact) -> dict:
        """The contact's campaign statistics in Brevo's shape, from the campaign engagement recorded."""
        opened: dict[int, dict] = {}
        clicked: dict[int, dict[str, dict]] = {}
        hard_bounces, unsubscriptions, complaints = [], [], []
        for event in self.campaign_events.get(contact.email or "", []):
            campaign_id, at = event["campaign_id"], event["at"]
            if event["event"] == "opened":
                seen = opened.setdefault(campaign_id, {"campaignId": campaign_id, "count": 0, "eventTime": at,
                                                       "ip": RELAY_IP})
                seen["count"] += 1
            elif event["event"] == "clicks":
                link = clicked.setdefault(campaign_id, {}).setdefault(
                    event["link"] or "", {"url": event["link"] or "", "count": 0, "eventTime": at, "ip": RELAY_IP})
                link["count"] += 1
            elif event["event"] == "hardBounces":
                hard_bounces.append({"campaignId": campaign_id, "eventTime": at})
            elif event["event"] == "spam":
                complaints.append({"campaignId": campaign_id, "eventTime": at})
            else:
                unsubscriptions.append({"campaignId": campaign_id, "eventTime": at, "ip": RELAY_IP})
        return {
            "messagesSent": [],
            "hardBounces": hard_bounces,
            "softBounces": [],
            "complaints": complaints,
            "unsubscriptions": {"userUnsubscription": unsubscriptions, "adminUnsubscription": []},
            "opened": list(opened.values()),
            "clicked": [{"campaignId": c, "links": list(links.values())} for c, links in clicked.items()],
            "transacAttributes": [],
            "delivered": [],
        }

    async def delete_contact(self, request: Request) -> Response:
        """204, and the contact leaves its lists; 404 ``document_not_found`` for an unknown one."""
        contact = self._identified(request)
        if isinstance(contact, JSONResponse):
            return contact
        for list_id in list(contact.list_ids):
            self._unlink(contact, list_id)
        if contact.email:
            self.by_email.pop(contact.email, None)
        if contact.ext_id:
            self.by_ext_id.pop(contact.ext_id, None)
        del self.contacts[contact.id]
        self.version += 1
        return Response(status_code=204)

    async def update_contact(self, request: Request) -> Response:
        """PUT: attributes (``""`` clears; ``EMAIL`` changes the address), lists, blocklist flags → 204."""
        contact = self._identified(request)
        if isinstance(contact, JSONResponse):
            return contact
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        problem = self._change_problem(body)
        if problem:
            return problem
        new_email = (body.get("attributes") or {}).get("EMAIL")
        if new_email is not None:
            if not valid_email(new_email):
                return bad("invalid_parameter", "Invalid email address")
            new_email = new_email.strip().lower()
            if self.by_email.get(new_email, contact.id) != contact.id:
                return bad(
                    "duplicate_parameter",
                    "Contact already exists with this email. Email address must be unique.",
                )
            if contact.email:
                self.by_email.pop(contact.email, None)
            contact.email = new_email
            self.by_email[new_email] = contact.id
        ext_id = body.get("ext_id")
        if isinstance(ext_id, str) and ext_id and self.by_ext_id.get(ext_id, contact.id) == contact.id:
            if contact.ext_id:
                self.by_ext_id.pop(contact.ext_id, None)
            contact.ext_id = ext_id
            self.by_ext_id[ext_id] = contact.id
        self._change(contact, body)
        return Response(status_code=204)

    def _since(self, request: Request, name: str) -> str | None | JSONResponse:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        moment = parse_datetime(raw)
        if moment is None:
            return bad(
                "invalid_parameter",
                f"{name} must be an ISO 8601 date-time with an offset, URL-encoded "
                "(a '+' sent unencoded arrives as a space)",
            )
        return iso(moment)

    def _listing(
        self, request: Request, contact_ids: Any, cache_name: str, list_id: int | None = None
    ) -> tuple[list[Contact], int, int] | JSONResponse:
        """Filter by modifiedSince/createdSince, sort by creation, page by limit/offset."""
        page_max = CONTACTS_PAGE_MAX if list_id is None else LIST_CONTACTS_PAGE_MAX
        limit = int_param(request, "limit", 50, 0, page_max)
        offset = int_param(request, "offset", 0, 0, None)
        modified_since = self._since(request, "modifiedSince")
        created_since = self._since(request, "createdSince")
        for value in (limit, offset, modified_since, created_since):
            if isinstance(value, JSONResponse):
                return value
        sort = request.query_params.get("sort", "desc")
        if sort not in ("asc", "desc"):
            return bad("invalid_parameter", "sort must be asc or desc")
        key = (modified_since, created_since, sort, list_id, self.version)
        cached = self._cache.get(cache_name)
        if cached and cached[0] == key:
            matches = cached[1]
        else:
            matches = [self.contacts[i] for i in sorted(contact_ids, reverse=sort == "desc")]
            if modified_since:
                matches = [c for c in matches if c.modified_at >= modified_since]
            if created_since:
                matches = [c for c in matches if c.created_at >= created_since]
            self._cache[cache_name] = (key, matches)
        return matches[offset : offset + limit], len(matches), offset

    async def list_contacts(self, request: Request) -> Response:
        """``modifiedSince`` is inclusive (a contact modified at the cursor instant is returned again)."""
        contact_ids: Any = self.contacts.keys()
        raw_lists = request.query_params.get("listIds")
        if raw_lists:
            try:
                wanted = [int(i) for i in raw_lists.split(",")]
            except ValueError:
                return bad("invalid_parameter", "listIds must be comma-separated list ids")
            contact_ids = set().union(*(self.members.get(i, set()) for i in wanted))
        listing = self._listing(request, contact_ids, f"contacts:{raw_lists}")
        if isinstance(listing, JSONResponse):
            return listing
        page, count, _ = listing
        return JSONResponse({"contacts": [c.public() for c in page], "count": count})

