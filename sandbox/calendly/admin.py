"""The emulated Calendly's admin API: bookings and cancellations that fire the webhooks a real booking would."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.calendly.common import (
    HOST_NAME,
    Invitee,
    ScheduledEvent,
    calendly_base,
    optional_str,
    required_time,
    resource_uuid,
)
from sandbox.core import AdminError, bulk_admin


class CalendlyAdmin:
    """``/_sandbox/calendly/...``: book and cancel (with reschedules)."""

    def admin_routes(self) -> list[Route]:
        return [
            Route("/calendly/bookings", admin(self.book), methods=["POST"]),
            Route("/calendly/cancellations", admin(self.cancel), methods=["POST"]),
        ]

    def _add_event(self, name: str, start_time: str, end_time: str, created_at: str) -> ScheduledEvent:
        event = ScheduledEvent(uuid=str(uuid.uuid4()), seq=next(self._seq), name=name, start_time=start_time,
                               end_time=end_time, created_at=created_at, updated_at=created_at)
        self.events[event.uuid] = event
        self._sorted_stale = True
        return event

    def _add_invitee(self, event: ScheduledEvent, email: str, name: str, tz: str, tracking: dict,
                     created_at: str, old_invitee: str | None = None) -> Invitee:
        invitee = Invitee(uuid=str(uuid.uuid4()), event_uuid=event.uuid, seq=next(self._seq), email=email,
                          name=name, timezone=tz, tracking=tracking, created_at=created_at,
                          updated_at=created_at, old_invitee=old_invitee)
        self.invitees[invitee.uuid] = invitee
        event.invitees.append(invitee.uuid)
        self.events_by_email.setdefault(email.lower(), set()).add(event.uuid)
        return invitee

    async def book(self, item: dict, base: str) -> dict:
        """An invitee books through the booking page (UTMs from the link land in ``tracking``)."""
        email, name, event_name = (optional_str(item, key) for key in ("email", "name", "event_name"))
        if not email or "@" not in email:
            raise AdminError(400, "email is required")
        if not name or not event_name:
            raise AdminError(400, "name and event_name are required")
        start_time, end_time = required_time(item, "start_time"), required_time(item, "end_time")
        created_at = required_time(item, "created_at")
        if end_time <= start_time:
            raise AdminError(400, "end_time must be after start_time")
        tracking = {key: optional_str(item, key) for key in
                    ("utm_campaign", "utm_source", "utm_medium", "utm_content", "utm_term")}
        tracking["salesforce_uuid"] = None
        tz = optional_str(item, "timezone") or "UTC"
        event = self._add_event(event_name, start_time, end_time, created_at)
        invitee = self._add_invitee(event, email.strip(), name, tz, tracking, created_at)
        await self._fire("invitee.created", invitee, base, created_at)
        return {"invitee_uri": self._invitee_uri(base, invitee.uuid),
                "event_uri": f"{base}/scheduled_events/{event.uuid}"}

    async def cancel(self, item: dict, base: str) -> dict:
        """A plain cancellation, or a reschedule: the old booking canceled plus a new one."""
        invitee_uuid = resource_uuid(item.get("invitee_uri"), "invitees")
        canceled_at = required_time(item, "canceled_at")
        reschedule_to = item.get("reschedule_to")
        if reschedule_to is not None:
            if not isinstance(reschedule_to, dict):
                raise AdminError(400, "reschedule_to must be an object {start_time, end_time}")
            start_time = required_time(reschedule_to, "start_time")
            end_time = required_time(reschedule_to, "end_time")
            if end_time <= start_time:
                raise AdminError(400, "reschedule_to.end_time must be after start_time")
        canceler_type = item.get("canceler_type", "invitee")
        if canceler_type not in ("invitee", "host"):
            raise AdminError(400, "canceler_type must be invitee or host")
        reason = optional_str(item, "reason")
        reverse_order = item.get("reverse_order", False)
        if not isinstance(reverse_order, bool):
            raise AdminError(400, "reverse_order must be a boolean")
        old = self.invitees.get(invitee_uuid or "")
        if old is None:
            raise AdminError(404, f"unknown invitee {item.get('invitee_uri')!r}")
        if old.status == "canceled":
            raise AdminError(400, "invitee is already canceled")
        cancellation = {"canceled_by": old.name if canceler_type == "invitee" else HOST_NAME,
                        "reason": reason, "canceler_type": canceler_type, "created_at": canceled_at}
        old_event = self.events[old.event_uuid]
        new = None
        if reschedule_to is not None:
            event = self._add_event(old_event.name, start_time, end_time, canceled_at)
            new = self._add_invitee(event, old.email, old.name, old.timezone, dict(old.tracking), canceled_at,
                                    old_invitee=old.uuid)
            old.rescheduled = True
            old.new_invitee = new.uuid
        old.status = "canceled"
        old.cancellation = cancellation
        old.updated_at = canceled_at
        old_event.status = "canceled"
        old_event.cancellation = dict(cancellation)
        old_event.updated_at = canceled_at
        fired = [("invitee.canceled", old, canceled_at)]
        if new is not None:
            fired.append(("invitee.created", new, canceled_at))
            if reverse_order:
                fired.reverse()
        for event_name, invitee, at in fired:
            await self._fire(event_name, invitee, base, at)
        return {"new_invitee_uri": self._invitee_uri(base, new.uuid) if new else None,
                "new_event_uri": f"{base}/scheduled_events/{new.event_uuid}" if new else None}


def admin(handler: Callable[[dict, str], Awaitable[dict]]) -> Callable[[Request], Awaitable[Response]]:
    """A bulk admin endpoint whose handler gets the emulated API's base URL (see ``calendly_base``)."""
    return bulk_admin(handler, context=calendly_base)
