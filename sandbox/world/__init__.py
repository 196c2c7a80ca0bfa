"""``python -m sandbox world``: a synthetic company's history, pushed into the sandbox and a backfill file.

Why it exists: the pipeline's tests, the demo and the bench need a world that holds every case of the behaviour rules (docs/)
(repeat leads, reschedules in both webhook orders, repeat buyers on Day 0/3/8, refunds, renewals and both
kinds of churn, CRM contacts that already have an owner, webinar duplicates, unknown org types and codes,
invalid emails, engagement tiers) at about ten raw events per contact.

The generator is a client like any other (docs/architecture.md: the sandbox imports no product code): it speaks HTTP to
the sandbox's admin API and emulated vendor APIs, POSTs live submissions to the collector, and writes the
historical form submissions to a JSONL backfill file, because only ``lifecycle import-forms`` keeps their
original timestamps (the collector stamps server time).

Email engagement is of two kinds: on the company's newsletter campaigns (one every two weeks to the
Newsletter list; about half of the opens, clicks, unsubscribes and bounces), which reach the pipeline only
through Brevo's marketing webhook and the collector, and on other email, which Brevo's event log holds.
Without a collector no webhook can carry the newsletter engagement, so it is recorded as the other kind:
the same moments and kinds, hence the same engagement tiers, either way.

Determinism: one ``random.Random(seed)`` drives every choice and the wall clock is only read for the default
start date, so the same seed, contact count and start give the same file, byte for byte, and the same calls.
Memory: contacts are generated and sent in blocks; only one block's payloads are held at a time.
"""

from __future__ import annotations

from sandbox.world.delivery import (
    Client,
    chunks,
    main,
    newsletter_list,
    run,
    send_block,
    send_live_forms,
)
from sandbox.world.generator import (
    World,
)
from sandbox.world.vocabulary import (
    DAY,
    HTTP_TIMEOUT,
    OWNER_IDS,
    PRODUCTS,
    UNKNOWN_ORG_TYPES,
    UNKNOWN_WEBINAR_CODES,
    WEBINAR_CODES,
    Block,
    Person,
    WorldError,
)

__all__ = [
    "Block",
    "Client",
    "DAY",
    "HTTP_TIMEOUT",
    "OWNER_IDS",
    "PRODUCTS",
    "Person",
    "UNKNOWN_ORG_TYPES",
    "UNKNOWN_WEBINAR_CODES",
    "WEBINAR_CODES",
    "World",
    "WorldError",
    "chunks",
    "main",
    "newsletter_list",
    "run",
    "send_block",
    "send_live_forms",
]
