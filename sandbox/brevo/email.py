"""Transactional email (``POST /v3/smtp/email``, message versions) and its event log (the statistics
endpoints), which may lag behind."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.brevo.common import (
    DATE_ONLY,
    EVENTS_PAGE_DEFAULT,
    EVENTS_PAGE_MAX,
    MESSAGE_VERSIONS_MAX,
    RELAY_IP,
    STATISTICS_EVENTS,
    bad,
    int_param,
    iso,
    utc_now,
    valid_email,
)
from sandbox.core import read_json


class TransactionalEmailApi:
    """``/v3/smtp/email`` and ``/v3/smtp/statistics``."""

    @staticmethod
    def _recipients_problem(recipients: Any, name: str) -> str | None:
        if not isinstance(recipients, list) or not recipients:
            return f"{name} must be a non-empty list of {{email, name}}"
        for recipient in recipients:
            if (
                not isinstance(recipient, dict)
                or not valid_email(recipient.get("email"))
            ):
                return f"valid email address is required in {name}"
            if "name" in recipient and not isinstance(recipient["name"], str):
                return f"name in {name} must be a string"
        return None

    def _email_problem(self, body: dict) -> JSONResponse | None:
        template_id = body.get("templateId")
        if template_id is not None and (
            not isinstance(template_id, int) or isinstance(template_id, bool) or template_id < 1
        ):
            return bad("invalid_parameter", "templateId must be a positive integer")
        versions = body.get("messageVersions")
        if versions is not None:
            if not isinstance(versions, list) or not versions or len(versions) > MESSAGE_VERSIONS_MAX:
                return bad(
                    "invalid_parameter", f"messageVersions must hold 1 to {MESSAGE_VERSIONS_MAX} versions"
                )
            for version in versions:
                problem = self._recipients_problem(
                    version.get("to") if isinstance(version, dict) else None, "to"
                )
                if problem:
                    return bad("invalid_parameter", f"messageVersions: {problem}")
                if "params" in version and not isinstance(version["params"], dict):
                    return bad("invalid_parameter", "messageVersions: params must be an object")
        else:
            if body.get("to") is None:
                return bad("missing_parameter", "to is missing")
            problem = self._recipients_problem(body["to"], "to")
            if problem:
                return bad("invalid_parameter", problem)
        for key in ("cc", "bcc"):
            if key in body:
                problem = self._recipients_problem(body[key], key)
                if problem:
                    return bad("invalid_parameter", problem)
        if template_id is None:
            if not (body.get("htmlContent") or body.get("textContent")):
                return bad("missing_parameter", "htmlContent, textContent or templateId is required")
            if not body.get("subject"):
                return bad("missing_parameter", "subject is missing")
            sender = body.get("sender")
            if not isinstance(sender, dict) or not (
                valid_email(sender.get("email")) or "id" in sender
            ):
                return bad("missing_parameter", "sender is missing (a valid sender email or id)")
        if "params" in body and not isinstance(body["params"], dict):
            return bad("invalid_parameter", "params must be an object")
        if "tags" in body and not (
            isinstance(body["tags"], list) and all(isinstance(t, str) for t in body["tags"])
        ):
            return bad("invalid_parameter", "tags must be a list of strings")
        if "headers" in body and not isinstance(body["headers"], dict):
            return bad("invalid_parameter", "headers must be an object")
        return None

    def _message_id(self, moment: datetime) -> str:
        return f"<{moment:%Y%m%d%H%M%S}.{next(self.ids['message'])}@smtp-relay.sandbox>"

    def _deliver(self, body: dict, version: dict) -> str:
        """Record one message and its ``requests`` and ``delivered`` events; returns its messageId."""
        moment = utc_now()
        message_id = self._message_id(moment)
        sender = body.get("sender") if isinstance(body.get("sender"), dict) else {}
        params = {**(body.get("params") or {}), **(version.get("params") or {})}
        to = [{"email": r["email"].strip().lower(), "name": r.get("name")} for r in version["to"]]
        email = {
            "messageId": message_id,
            "to": to,
            "templateId": body.get("templateId"),
            "params": params,
            "tags": list(body.get("tags") or []),
            "subject": version.get("subject") or body.get("subject"),
            "sender": sender or None,
            "headers": body.get("headers") or {},
            "received_at": iso(moment),
        }
        self.emails.append(email)
        for recipient in to:
            self.sent_to.setdefault(recipient["email"], []).append(email)
            for event in ("requests", "delivered"):
                self._record_event(recipient["email"], event, iso(moment), email)
        return message_id

    async def send_email(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        problem = self._email_problem(body)
        if problem:
            return problem
        if body.get("messageVersions") is not None:
            ids = [self._deliver(body, version) for version in body["messageVersions"]]
            return JSONResponse({"messageIds": ids}, status_code=201)
        return JSONResponse({"messageId": self._deliver(body, {"to": body["to"]})}, status_code=201)

    # ----- statistics --------------------------------------------------------------------------------

    def _record_event(
        self,
        email: str,
        event: str,
        at: str,
        message: dict | None,
        link: str | None = None,
        template_id: int | None = None,
    ) -> None:
        """One statistics event; without a sent message (engagement simulated for a transactional email the
        sandbox did not send) it still gets a messageId of its own, as every Brevo event has one."""
        message_id = message["messageId"] if message else self._message_id(datetime.fromisoformat(at))
        self.events.append(
            {
                "email": email,
                "date": at,
                "messageId": message_id,
                "event": event,
                "tags": message["tags"] if message else [],
                "templateId": message["templateId"] if message else template_id,
                "subject": message["subject"] if message else None,
                "from": (message.get("sender") or {}).get("email") if message else None,
                "ip": RELAY_IP,
                "link": link,
            }
        )

    @staticmethod
    def _public_event(event: dict) -> dict:
        """Brevo's event item; ``tag`` is the first tag as Brevo reports it, ``tags`` keeps them all."""
        public = {k: v for k, v in event.items() if k != "link" or v is not None}
        public["tag"] = event["tags"][0] if event["tags"] else ""
        return public

    def _event_filters(self, request: Request) -> dict | JSONResponse:
        params = request.query_params
        start, end, days = params.get("startDate"), params.get("endDate"), params.get("days")
        if (start is None) != (end is None):
            return bad("invalid_parameter", "startDate and endDate must be given together")
        if days is not None and start is not None:
            return bad("invalid_parameter", "days cannot be combined with startDate and endDate")
        if start is not None:
            if not (DATE_ONLY.match(start) and DATE_ONLY.match(end)):
                return bad("invalid_parameter", "startDate and endDate use YYYY-MM-DD")
            if start > end:
                return bad("invalid_parameter", "startDate must not be after endDate")
        if days is not None:
            if not days.isdigit() or int(days) < 1:
                return bad("invalid_parameter", "days must be a positive integer")
            today = utc_now().date()
            start, end = (today - timedelta(days=int(days) - 1)).isoformat(), today.isoformat()
        event = params.get("event")
        if event is not None and event not in STATISTICS_EVENTS:
            return bad("invalid_parameter", f"event must be one of {', '.join(STATISTICS_EVENTS)}")
        template_id = params.get("templateId")
        if template_id is not None and not template_id.isdigit():
            return bad("invalid_parameter", "templateId must be an integer")
        sort = params.get("sort", "desc")
        if sort not in ("asc", "desc"):
            return bad("invalid_parameter", "sort must be asc or desc")
        tags = params.get("tags")
        if tags is not None:
            try:
                parsed = json.loads(tags)
            except ValueError:
                parsed = tags.split(",")
            tags = tuple(parsed) if isinstance(parsed, list) else (str(parsed),)
        return {
            "start": start,
            "end": end,
            "email": (params.get("email") or "").strip().lower() or None,
            "event": event,
            "tags": tags,
            "messageId": params.get("messageId"),
            "templateId": int(template_id) if template_id else None,
            "sort": sort,
        }

    def _event_matches(self, event: dict, f: dict) -> bool:
        day = event["date"][:10]
        if f["start"] and not f["start"] <= day <= f["end"]:
            return False
        if f["email"] and event["email"] != f["email"]:
            return False
        if f["event"] and not (
            event["event"] == f["event"]
            or f["event"] == "bounces"
            and event["event"] in ("hardBounces", "softBounces")
        ):
            return False
        if f["tags"] and not set(f["tags"]) & set(event["tags"]):
            return False
        if f["messageId"] and event["messageId"] != f["messageId"]:
            return False
        return not (f["templateId"] and event["templateId"] != f["templateId"])

    async def statistics_events(self, request: Request) -> Response:
        """Filtered, date-sorted events; ``{}`` when nothing matches, as Brevo answers. With an event lag,
        only the events dated at least that long ago."""
        limit = int_param(request, "limit", EVENTS_PAGE_DEFAULT, 0, EVENTS_PAGE_MAX)
        offset = int_param(request, "offset", 0, 0, None)
        for value in (limit, offset):
            if isinstance(value, JSONResponse):
                return value
        filters = self._event_filters(request)
        if isinstance(filters, JSONResponse):
            return filters
        key = (tuple(sorted(filters.items(), key=lambda kv: kv[0])), len(self.events))
        cached = self._cache.get("events")
        if cached and cached[0] == key:
            matches = cached[1]
        else:
            matches = sorted(
                (e for e in self.events if self._event_matches(e, filters)),
                key=lambda e: e["date"],
                reverse=filters["sort"] == "desc",
            )
            self._cache["events"] = (key, matches)
        if self.event_lag:
            shown_until = iso(utc_now() - timedelta(seconds=self.event_lag))
            matches = [e for e in matches if e["date"] <= shown_until]
        page = matches[offset : offset + limit]
        return JSONResponse({"events": [self._public_event(e) for e in page]} if page else {})

