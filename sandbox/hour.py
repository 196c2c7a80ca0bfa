"""``python -m sandbox hour``: one realistic hour of change on top of a generated world (what the bench's
"1 % change" run ingests).

About one contact in a hundred does something in the hour: new leads fill in forms (live, through the
collector), known contacts register for a webinar, book a demo, buy, open and click emails or unsubscribe
(about half of it on the newsletter sent the day before, through Brevo's marketing webhook), and sales edits some of them in HubSpot (owner, phone) through the CRM's own API. The known contacts come
from a JSONL file (``email``, ``first_name``, ``last_name``, ``segment`` per line), picked by the caller;
new leads are people the world never had (indices from ``--contacts`` on), so they never collide with it.

Every event is timestamped inside ``[--start, --end)``, except the live forms, which the collector stamps
with its own clock (the caller starts the hour at or before now). Deterministic for one seed and input.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from sandbox.core import env
from sandbox.world import (
    DAY,
    HTTP_TIMEOUT,
    OWNER_IDS,
    WEBINAR_CODES,
    Block,
    Client,
    Person,
    World,
    WorldError,
    chunks,
    newsletter_list,
    send_block,
    send_live_forms,
)

HUBSPOT_BATCH = 100
SHARES = (("new_lead", 0.40), ("webinar", 0.15), ("crm_edit", 0.15), ("booking", 0.10), ("purchase", 0.10),
          ("engagement", 0.10))
"""What the hour's contacts do, as shares of them (new leads are new people; the rest are known)."""


def known_people(path: Path) -> list[Person]:
    people = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            people.append(Person(row.get("segment") or "B2C", row.get("first_name") or "Alex",
                                 row.get("last_name") or "Doe", row["email"], None, None, None, True))
    return people


def plan(world: World, contacts: int, changed: int, known: list[Person]) -> tuple[Block, list[dict], dict]:
    """The hour's events: a block for the sandbox, the CRM edits, and the counts by kind."""
    rng = world.rng
    counts: collections.Counter[str] = collections.Counter()
    block = Block()
    edits: list[dict] = []
    known_iter = iter(known)
    for kind, share in SHARES:
        for number in range(round(changed * share)):
            if kind == "new_lead":
                person = world.person(contacts + number)
                form_id = "contact" if person.segment == "B2B" else rng.choice(("newsletter", "download"))
                block.live.append((form_id, world.form(person, form_id, world.touch())))
                counts[kind] += 1
                continue
            person = next(known_iter, None)
            if person is None:
                break
            counts[kind] += 1
            moment = world.at(world.start, world.end) or world.start
            if kind == "webinar":
                block.live.append(("webinar", world.form(person, "webinar", world.touch(),
                                                         rng.choice(WEBINAR_CODES))))
            elif kind == "crm_edit":
                edits.append({"idProperty": "email", "id": person.email, "properties": {
                    "hubspot_owner_id": rng.choice(OWNER_IDS), "phone": world.phone()}})
            elif kind == "booking":
                world.booking(block, person, moment, world.touch())
            elif kind == "purchase":
                world.purchase(block, person, moment, world.touch())
            else:
                event = rng.choices(("opened", "clicked", "unsubscribed"), (0.6, 0.35, 0.05))[0]
                world.brevo_event(block, person, event, moment)
    return block, edits, dict(counts)


async def send(client: Client, block: Block, edits: list[dict]) -> dict:
    """The block through the sandbox and the collector, the CRM edits through HubSpot's batch upsert."""
    headers = {"authorization": f"Bearer {env('HUBSPOT_TOKEN', 'pat-sandbox')}"}
    for batch in chunks(edits, HUBSPOT_BATCH):
        await client.request("POST", "/hubspot/crm/v3/objects/contacts/batch/upsert", expect=(200, 201, 207),
                             json_body={"inputs": batch}, headers=headers)
    await send_block(client, block, await newsletter_list(client))
    return await send_live_forms(client, block.live, ())


def run(contacts: int, changed: int, seed: int, known_file: Path, start: datetime, end: datetime,
        sandbox_url: str, collector_url: str) -> dict:
    known = known_people(known_file)
    world = World(contacts, seed, start.date(), 1, live_forms=0)
    world.start, world.end = int(start.timestamp()), int(end.timestamp())
    newsletter_sent = start - timedelta(days=1)
    world.campaigns = [(world.start // DAY, f"Newsletter {newsletter_sent:%Y-%m-%d}",
                        int(newsletter_sent.timestamp()))]
    block, edits, counts = plan(world, contacts, changed, known)

    async def go() -> dict:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            return await send(Client(http, sandbox_url, collector_url), block, edits)

    live = asyncio.run(go())
    if live["failed"]:
        raise WorldError(f"the collector refused {live['failed']} of {live['sent']} live forms")
    return {"contacts_changed": sum(counts.values()), "by_kind": counts, "live_forms": live}


def main(args: argparse.Namespace) -> int:
    """Entry point: the JSON summary on stdout, errors on stderr."""
    try:
        result = run(args.contacts, args.changed, args.seed, Path(args.known), args.start, args.end,
                     args.sandbox_url, args.collector_url)
    except (WorldError, httpx.HTTPError, OSError, ValueError) as exc:
        print(f"hour: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
