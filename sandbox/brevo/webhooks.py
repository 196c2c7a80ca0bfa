"""Webhooks: registration, and the delivery of marketing (campaign) events with the registered bearer
token, batched when asked."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.brevo.common import (
    CAMPAIGN_WEBHOOK_EVENTS,
    MAX_WEBHOOKS,
    RELAY_IP,
    WEBHOOK_EVENTS,
    bad,
    brevo_error,
    iso,
    utc_now,
)
from sandbox.core import read_json


class WebhooksApi:
    """``/v3/webhooks`` and the deliveries."""

    def _webhook_problem(self, body: Any) -> JSONResponse | None:
        if not isinstance(body, dict):
            return bad("invalid_parameter", "body must be a JSON object")
        url = body.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            return bad("invalid_parameter", "url is missing or not a valid URL")
        kind = body.get("type", "transactional")
        if kind not in WEBHOOK_EVENTS:
            return bad("invalid_parameter", f"type must be one of {', '.join(WEBHOOK_EVENTS)}")
        events = body.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            return bad("missing_parameter", "events must be a non-empty list of event names")
        unknown = [e for e in events if e not in WEBHOOK_EVENTS[kind]]
        if unknown:
            return bad("invalid_parameter", f"events not valid for a {kind} webhook: {', '.join(unknown)}; "
                                            f"expected some of {', '.join(WEBHOOK_EVENTS[kind])}")
        auth = body.get("auth")
        if auth is not None and not (
            isinstance(auth, dict) and auth.get("type") == "bearer"
            and isinstance(auth.get("token"), str) and auth["token"]
        ):
            return bad("invalid_parameter", "auth must be {\"type\": \"bearer\", \"token\": a non-empty string}")
        if "batched" in body and not isinstance(body["batched"], bool):
            return bad("invalid_parameter", "batched must be a boolean")
        if len(self.registered_webhooks) >= MAX_WEBHOOKS:
            return bad("not_acceptable", f"the account already has {MAX_WEBHOOKS} webhooks")
        return None

    async def create_webhook(self, request: Request) -> Response:
        body = await read_json(request)
        problem = self._webhook_problem(body)
        if problem is not None:
            return problem
        webhook_id = next(self.ids["webhook"])
        now = iso(utc_now())
        self.registered_webhooks[webhook_id] = {
            "id": webhook_id,
            "url": body["url"],
            "description": body.get("description") or "",
            "events": list(dict.fromkeys(body["events"])),
            "type": body.get("type", "transactional"),
            "batched": body.get("batched", False),
            "auth": body.get("auth"),
            "headers": body.get("headers") or [],
            "createdAt": now,
            "modifiedAt": now,
        }
        return JSONResponse({"id": webhook_id}, status_code=201)

    @staticmethod
    def _webhook_view(webhook: dict) -> dict:
        """A webhook as the API shows it: its auth type, never its token."""
        view = {k: v for k, v in webhook.items() if k != "auth"}
        if webhook["auth"]:
            view["auth"] = {"type": webhook["auth"]["type"]}
        return view

    async def list_webhooks(self, request: Request) -> Response:
        kind = request.query_params.get("type", "transactional")
        if kind not in WEBHOOK_EVENTS:
            return bad("invalid_parameter", f"type must be one of {', '.join(WEBHOOK_EVENTS)}")
        sort = request.query_params.get("sort", "desc")
        if sort not in ("asc", "desc"):
            return bad("invalid_parameter", "sort must be asc or desc")
        chosen = [self._webhook_view(w) for w in self.registered_webhooks.values() if w["type"] == kind]
        chosen.sort(key=lambda w: w["id"], reverse=sort == "desc")
        return JSONResponse({"webhooks": chosen})

    def _webhook_or_404(self, request: Request) -> dict | JSONResponse:
        raw = request.path_params["webhook_id"]
        webhook = self.registered_webhooks.get(int(raw)) if raw.isdigit() else None
        if webhook is None:
            return brevo_error(404, "document_not_found", "Webhook not found")
        return webhook

    async def get_webhook(self, request: Request) -> Response:
        webhook = self._webhook_or_404(request)
        return webhook if isinstance(webhook, JSONResponse) else JSONResponse(self._webhook_view(webhook))

    async def delete_webhook(self, request: Request) -> Response:
        webhook = self._webhook_or_404(request)
        if isinstance(webhook, JSONResponse):
            return webhook
        del self.registered_webhooks[webhook["id"]]
        return Response(status_code=204)

    @staticmethod
    def _campaign_payload(webhook_id: int, event: dict) -> dict:
        """One campaign event in Brevo's marketing webhook shape."""
        sent, happened = datetime.fromisoformat(event["sent_at"]), datetime.fromisoformat(event["at"])
        payload: dict[str, Any] = {
            "id": webhook_id,
            "camp_id": event["campaign_id"],
            "email": event["email"],
            "campaign name": event["name"],
            "date_sent": sent.strftime("%Y-%m-%d %H:%M:%S"),
            "date_event": happened.strftime("%Y-%m-%d %H:%M:%S"),
            "event": CAMPAIGN_WEBHOOK_EVENTS[event["event"]][1],
            "tag": "",
            "segment_ids": [],
            "ts_sent": int(sent.timestamp()),
            "ts_event": int(happened.timestamp()),
            "ts": int(happened.timestamp()),
        }
        if event["event"] == "clicks":
            payload["URL"] = event["link"] or ""
        elif event["event"] == "hardBounces":
            payload["sending_ip"] = RELAY_IP
        elif event["event"] == "unsubscribed":
            payload["list_id"] = []
        elif event["event"] == "spam":
            payload["reason"] = "undesired"
        return payload

    async def _deliver_campaign_events(self, events: list[dict]) -> None:
        """POST the events to every marketing webhook subscribed to them: one array per batched webhook,
        else one object per event, each with the webhook's bearer token when it has one."""
        for webhook in list(self.registered_webhooks.values()):
            if webhook["type"] != "marketing":
                continue
            payloads = [self._campaign_payload(webhook["id"], event) for event in events
                        if CAMPAIGN_WEBHOOK_EVENTS[event["event"]][0] in webhook["events"]]
            if not payloads:
                continue
            auth = webhook["auth"]
            headers = {"Authorization": f"Bearer {auth['token']}"} if auth else {}
            bodies = [payloads] if webhook["batched"] else payloads
            for body in bodies:
                event_type = "batch" if webhook["batched"] else body["event"]
                await self.webhooks.send("brevo", webhook["url"], event_type, json.dumps(body).encode(),
                                         lambda headers=headers: dict(headers))

