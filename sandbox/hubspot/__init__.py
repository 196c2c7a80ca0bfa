"""Emulated HubSpot CRM: contacts (v3, with archive), the property registry and its groups, search, notes,
owners and v4 associations between contacts and notes.

Faithful where a client can get it wrong: every value is a string and ``""`` clears it, unknown and
read-only properties and invalid enumeration options are rejected, a property must name an existing property
group, batches are capped at 100 and report partial failures with HTTP 207, search pages by numeric offset
and stops at 10,000 results, and the rolling 10-second bucket (with its headers) is separate from search's
own 5-per-second limit, which sends no rate-limit headers. An archived contact leaves reads, search and
batch reads (``?archived=true`` lists it) and frees its email. Paths HubSpot does not serve here answer
HubSpot's JSON 404, and a known path called with another method its JSON 405. Handlers mutate the stores
without awaiting in between, so one uvicorn worker's event loop serialises them.
"""

from sandbox.hubspot.account import HubSpot

__all__ = ["HubSpot"]
