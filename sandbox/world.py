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

import argparse
import asyncio
import bisect
import collections
import json
import os
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import quote, urlencode

import httpx

from sandbox.core import env

HOUR = 3600
DAY = 86400

BLOCK_CONTACTS = 5000
ADMIN_CHUNK = 500
# Calls that fire webhooks answer only once every delivery is done: smaller chunks keep several in flight.
WEBHOOK_CHUNK = 100
BREVO_EVENT_CHUNK = 1000
BREVO_IMPORT_CHUNK = 2000
CONCURRENCY = 4
# Brevo allows 10 requests per second on /v3/contacts/*: pace below it instead of collecting 429s.
BREVO_CONTACTS_SPACING = 0.12
MAX_RATE_LIMIT_RETRIES = 8
HTTP_TIMEOUT = 600.0

SITE = "https://www.carewell.example"
FORM_IDS = ("contact", "newsletter", "download", "webinar")
OWNER_IDS = ("101", "102", "103")
WEBINAR_CODES = tuple(f"WB00{n}" for n in range(1, 7))
UNKNOWN_WEBINAR_CODES = ("WB999", "WB010")
NEWSLETTER_LIST = "Newsletter"
# Colleagues share organizations; past this many, new B2B contacts join existing ones (bounded memory).
MAX_ORGS = 20_000
# Deliberately invalid live submissions: the collector must answer 422 and land nothing.
BAD_LIVE_FORMS = (("newsletter", {"email": "ana.at.example.com", "first_name": "Ana", "consent": True}),
                  ("contact", {"email": "bob@", "first_name": "Bob", "organization": "Nowhere Inc"}))

FIRST_NAMES = (
    "Ana", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hiro", "Imani", "Jonas", "Keisha", "Liam",
    "Maria", "Nikhil", "Olivia", "Pedro", "Quinn", "Rosa", "Samuel", "Tanya", "Umar", "Valeria", "Wei",
    "Ximena", "Yusuf", "Zoe", "Aaliyah", "Bruno", "Carmen", "Deshawn", "Emily", "Fatima", "Gustavo", "Hannah",
    "Ivan", "Julia", "Kwame", "Leah", "Mateo", "Nora", "Oscar", "Priya", "Rafael", "Sofia", "Thomas", "Uma",
)
LAST_NAMES = (
    "Garcia", "Smith", "Nguyen", "Johnson", "Okafor", "Müller", "Rossi", "Kim", "Patel", "Brown", "Silva",
    "Cohen", "Haddad", "Williams", "Lopez", "Kowalski", "Tanaka", "O'Brien", "Andersen", "Mensah", "Dubois",
    "Hernandez", "Chen", "Ivanova", "Jackson", "Martinez", "Novak", "Price", "Reyes", "Schmidt", "Taylor",
    "Walker", "Young", "Zhang", "Baker", "Costa", "Diallo", "Evans", "Fischer", "Gomez",
)
PLACES = (
    "Springfield", "Riverside", "Franklin", "Greenville", "Madison", "Fairview", "Salem", "Clinton",
    "Georgetown", "Arlington", "Ashland", "Dover", "Oxford", "Jackson", "Burlington", "Manchester",
    "Milton", "Newport", "Auburn", "Dayton", "Lexington", "Milford", "Winchester", "Hudson",
)
B2B_TYPES = (
    ("Provider Organization", 0.25), ("Assisted Living", 0.25), ("Home Care Agency", 0.2), ("YMCA", 0.15),
    ("Hospital", 0.15),
)
ORG_NAMES = {
    "Provider Organization": ("{place} Health Partners", "{place} Care Network", "{place} Medical Group"),
    "Assisted Living": ("Sunrise Assisted Living of {place}", "Maple Grove Assisted Living",
                        "Willow Creek Senior Living {place}", "Golden Oaks Assisted Living"),
    "Home Care Agency": ("Comfort Home Care {place}", "Kindred Home Care", "BrightPath Home Care of {place}",
                         "Caring Hands Home Care"),
    "YMCA": ("YMCA of {place}", "{place} Family YMCA"),
    "Hospital": ("{place} General Hospital", "{place} Memorial Hospital", "{place} Regional Medical Center"),
}
UNKNOWN_ORG_TYPES = ("Space Agency", "Veterinary Clinic", "School District")
CAMPAIGNS = (
    ("google", "cpc", "spring_promo"), ("google", "cpc", "brand_search"), ("bing", "cpc", "spring_promo"),
    ("linkedin", "paid_social", "q3_webinars"), ("linkedin", "paid_social", "assisted_living_abm"),
    ("facebook", "paid_social", "family_caregivers"), ("newsletter", "email", "monthly"),
    ("partner", "referral", "ymca_partnership"),
)
REFERRERS = (
    "https://www.google.com/", "https://www.linkedin.com/", "https://www.bing.com/", "https://www.facebook.com/",
    "https://duckduckgo.com/", "https://partners.agingwell.example/resources", "https://ymca-network.example/",
)
FREE_MAIL = ("mail.example.com", "inbox.example.net", "post.example.org", "example.com",
             "webmail.example.net")
PRODUCTS = (
    ("prod_course_basics", "Caregiving basics course", 4900, 0.35),
    ("prod_toolkit", "Family care toolkit", 1900, 0.35),
    ("prod_consult", "1:1 consultation", 9900, 0.15),
    ("prod_dementia_course", "Dementia care course", 7900, 0.15),
)
MEMBERSHIP = ("prod_membership", "Caregiver membership", 1500)
SUBSCRIPTION_INTERVAL_DAYS = 30
HS_SOURCES = (
    "ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS", "DIRECT_TRAFFIC",
    "OFFLINE", "PAID_SOCIAL", "OTHER_CAMPAIGNS",
)
NEWSLETTER_EVERY_DAYS = 14
NEWSLETTER_SHARE = 0.5
"""Of the engagement after the first campaign, the share that is on a newsletter campaign."""
NEWSLETTER_TOPICS = (
    "Caregiver tips", "Monthly roundup", "Webinar highlights", "Care team stories", "Product news",
)
BLOG_LINKS = (
    f"{SITE}/blog/caregiver-burnout", f"{SITE}/blog/medicare-checklist", f"{SITE}/webinars",
    f"{SITE}/resources/caregiver-guide", f"{SITE}/pricing",
)


class WorldError(RuntimeError):
    """A call the generator depends on failed; the message names the call and the status, never a key."""


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_start(days: int) -> date:
    """Today (UTC) minus the window, so the window ends now and Stripe's 30-day Events API covers its tail."""
    return datetime.now(UTC).date() - timedelta(days=days)


class Quota:
    """Picks a share of the eligible cases at ``rate``, but the first ``minimum`` eligible ones always,
    so that a small world (a test's 200 contacts) still holds every case of the catalogue."""

    def __init__(self, rng: random.Random, rate: float, minimum: int = 1) -> None:
        self.rng = rng
        self.rate = rate
        self.minimum = minimum
        self.hits = 0

    def hit(self) -> bool:
        if self.hits < self.minimum or self.rng.random() < self.rate:
            self.hits += 1
            return True
        return False


@dataclass(frozen=True)
class Org:
    name: str
    org_type: str
    domain: str


@dataclass
class Person:
    segment: str  # B2B | B2C
    first_name: str
    last_name: str
    email: str  # canonical: trimmed, lower-case
    phone: str | None
    organization: str | None
    org_type: str | None  # None: the form does not send the field; "" : sent empty
    consent: bool | None

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass
class Block:
    """Everything one block of contacts sends; follow-ups are aligned with the calls whose ids they need."""

    forms: list[dict] = field(default_factory=list)
    crm: list[dict] = field(default_factory=list)
    brevo_contacts: list[dict] = field(default_factory=list)
    brevo_events: list[dict] = field(default_factory=list)
    bookings: list[dict] = field(default_factory=list)
    booking_followups: list[dict | None] = field(default_factory=list)
    purchases: list[dict] = field(default_factory=list)
    refund_times: list[str | None] = field(default_factory=list)
    subscriptions: list[dict] = field(default_factory=list)
    subscription_plans: list[tuple[list[dict], dict | None]] = field(default_factory=list)
    live: list[tuple[str, dict]] = field(default_factory=list)


class World:
    """The synthetic company: people and their timelines, drawn from one seeded generator."""

    def __init__(self, contacts: int, seed: int, start: date, days: int, live_forms: int) -> None:
        self.contacts = contacts
        self.rng = random.Random(seed)
        # Which engagement is on a newsletter is drawn apart, so the rest of a seed's world stays as it was.
        self.newsletter_rng = random.Random(f"{seed}-newsletter")
        self.start = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
        self.end = self.start + days * DAY
        self.counts: collections.Counter[str] = collections.Counter()
        self.forms: collections.Counter[str] = collections.Counter()
        self.brevo_event_counts: collections.Counter[str] = collections.Counter()
        self.orgs: list[Org] = []
        live = min(live_forms, contacts)
        self.live_people = set(self.rng.sample(range(contacts), live))
        rng = self.rng
        self.q_unknown_org = Quota(rng, 0.01)
        self.q_booking = Quota(rng, 0.35)
        self.q_reschedule = Quota(rng, 0.08, minimum=2)
        self.q_cancel = Quota(rng, 0.065)
        self.q_nurture_repeat = Quota(rng, 0.15)
        self.q_late_repeat = Quota(rng, 0.10)
        self.q_webinar_dup = Quota(rng, 0.08)
        self.q_unknown_code = Quota(rng, 0.01)
        self.q_bad_email = Quota(rng, 0.005, minimum=3)
        self.q_repeat_buyer = Quota(rng, 0.13)
        self.q_late_purchase = Quota(rng, 0.08)
        self.q_refund = Quota(rng, 0.03)
        self.q_subscription = Quota(rng, 0.10, minimum=3)
        self.q_sub_cancel = Quota(rng, 0.20)
        self.q_sub_unpaid = Quota(rng, 0.125)
        self.q_crm_b2b = Quota(rng, 0.25)
        self.q_crm_b2c = Quota(rng, 0.068)
        self.q_crm_customer = Quota(rng, 0.2)
        self.q_crm_touch = Quota(rng, 0.3)
        self.q_brevo = Quota(rng, 0.30)
        self.q_unsubscribe = Quota(rng, 0.12)
        self.q_bounce = Quota(rng, 0.016)
        self.bad_email_patterns = 0
        self.campaigns = [(number + 1, f"{NEWSLETTER_TOPICS[number % len(NEWSLETTER_TOPICS)]} #{number + 1}",
                           sent_at)
                          for number, sent_at in enumerate(range(self.start + 2 * DAY + 15 * HOUR, self.end,
                                                                 NEWSLETTER_EVERY_DAYS * DAY))]
        """The newsletter campaigns sent in the window: (id, name, sent at), oldest first."""

    # -- people -------------------------------------------------------------------------------------
    def person(self, index: int) -> Person:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local_last = re.sub(r"[^a-z]", "", last.lower().replace("ü", "u"))
        consent = rng.choices((True, False, None), (0.92, 0.05, 0.03))[0]
        phone = self.phone() if rng.random() < 0.7 else None
        if rng.random() < 0.45:
            org = self.org()
            email = f"{first.lower()}.{local_last}{index}@{org.domain}"
            return Person("B2B", first, last, email, phone, org.name, org.org_type, consent)
        style = rng.randrange(3)
        local = (f"{first.lower()}{local_last[0]}{index}", f"{first.lower()}_{local_last}{index}",
                 f"{local_last}.{first.lower()}{index}")[style]
        org_type = rng.choices(("Individual", None, ""), (0.6, 0.25, 0.15))[0]
        return Person("B2C", first, last, f"{local}@{rng.choice(FREE_MAIL)}", phone, None, org_type,
                      consent)

    def phone(self) -> str:
        rng = self.rng
        area, line = rng.randrange(200, 990), rng.randrange(100, 10000)
        return rng.choice((f"+1555{area:03d}{line:04d}", f"(555) {area:03d}-{line:04d}",
                           f"555.{area:03d}.{line:04d}", f"+1 555 {area:03d} {line:04d}"))

    def org(self) -> Org:
        rng = self.rng
        if self.orgs and (len(self.orgs) >= MAX_ORGS or rng.random() < 0.3):
            return rng.choice(self.orgs)
        place = rng.choice(PLACES)
        if self.q_unknown_org.hit():
            kind = rng.choice(UNKNOWN_ORG_TYPES)
            name = f"{place} {kind}"
        else:
            kind = rng.choices([k for k, _ in B2B_TYPES], [w for _, w in B2B_TYPES])[0]
            name = rng.choice(ORG_NAMES[kind]).format(place=place)
        domain = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + f"-{len(self.orgs)}.example"
        org = Org(name, kind, domain)
        self.orgs.append(org)
        return org

    def submitted_email(self, person: Person) -> str:
        """As people type it: mostly clean, sometimes capitalised, shouted or padded (normalized
        downstream)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.85:
            return person.email
        if roll < 0.93:
            local, domain = person.email.split("@")
            return f"{local.capitalize()}@{domain.capitalize()}"
        if roll < 0.97:
            return person.email.upper()
        return f" {person.email} "

    def bad_email(self, person: Person) -> str:
        local, domain = person.email.split("@")
        self.bad_email_patterns += 1
        return (f"{local}.at.{domain}", f"{local}@", f"@{domain}")[self.bad_email_patterns % 3]

    def touch(self) -> dict[str, str]:
        """UTM parameters on ~60 % of touches, else a referrer on ~25 %, else nothing (direct)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.6:
            source, medium, campaign = rng.choice(CAMPAIGNS)
            utm = {"utm_source": source, "utm_medium": medium, "utm_campaign": campaign}
            if rng.random() < 0.15:
                utm["utm_content"] = rng.choice(("ad_a", "ad_b", "hero_banner"))
            if medium == "cpc" and rng.random() < 0.3:
                utm["utm_term"] = rng.choice(("caregiver training", "home care software", "elder care"))
            return utm
        if roll < 0.85:
            return {"referrer": rng.choice(REFERRERS)}
        return {}

    def at(self, low: int, high: int) -> int | None:
        """A moment in [low, high) clipped to the window, or None when that range is empty."""
        low, high = max(low, self.start), min(high, self.end)
        return self.rng.randrange(low, high) if high > low else None

    # -- forms ---------------------------------------------------------------------------------------
    def form(self, person: Person, form_id: str, touch: dict[str, str],
             webinar_code: str | None = None) -> dict:
        """The fields a web form posts (without the backfill's form_id/submitted_at)."""
        rng = self.rng
        fields: dict[str, object] = {"email": self.submitted_email(person), "first_name": person.first_name}
        if form_id != "newsletter":
            fields["last_name"] = person.last_name
            if person.organization:
                fields["organization"] = person.organization
            if person.org_type is not None:
                fields["org_type"] = person.org_type
        if form_id == "contact" and person.phone:
            fields["phone"] = person.phone
        if webinar_code:
            fields["webinar_code"] = webinar_code
        fields.update(touch)
        page = {"contact": "/contact", "newsletter": "/newsletter", "download": "/resources/caregiver-guide",
                "webinar": f"/webinars/{webinar_code}"}[form_id]
        utm = {k: v for k, v in touch.items() if k.startswith("utm_")}
        fields["page_url"] = SITE + page + (f"?{urlencode(utm)}" if utm else "")
        consent = person.consent if rng.random() < 0.97 else not person.consent
        if consent is not None:
            fields["consent"] = consent
        return fields

    def add_form(self, block: Block, person: Person, form_id: str, ts: int, touch: dict[str, str],
                 webinar_code: str | None = None) -> None:
        row = {"form_id": form_id, "submitted_at": iso(ts), **self.form(person, form_id, touch, webinar_code)}
        block.forms.append(row)
        self.forms[form_id] += 1
        if self.q_bad_email.hit():
            bad_ts = min(ts + self.rng.randrange(60, 600), self.end - 1)
            block.forms.append({**row, "submitted_at": iso(bad_ts), "email": self.bad_email(person)})
            self.forms[form_id] += 1
            self.counts["bad_records"] += 1

    def webinars(self, block: Block, person: Person, first: int, count: int) -> bool:
        """Registrations for ``count`` webinars (sometimes twice for one); whether any was made."""
        rng = self.rng
        registered = False
        for code in rng.sample(WEBINAR_CODES, count):
            ts = self.at(first, self.end)
            if ts is None:
                continue
            registered = True
            if self.q_unknown_code.hit():
                code = rng.choice(UNKNOWN_WEBINAR_CODES)
                self.counts["unknown_webinar_codes"] += 1
            touch = self.touch()
            self.add_form(block, person, "webinar", ts, touch, code)
            again = ts + rng.randrange(HOUR, 3 * DAY)
            if again < self.end and self.q_webinar_dup.hit():
                self.add_form(block, person, "webinar", again, touch, code)
                self.counts["webinar_duplicates"] += 1
        return registered

    # -- timelines -----------------------------------------------------------------------------------
    def contact(self, block: Block, index: int) -> None:
        rng = self.rng
        person = self.person(index)
        self.counts[person.segment] += 1
        if person.org_type in UNKNOWN_ORG_TYPES:
            self.counts["unknown_org_type_contacts"] += 1
        first = self.at(self.start, self.end - HOUR) or self.start
        touched = False
        newsletter_at: int | None = None
        if person.segment == "B2B":
            if rng.random() < 0.7:
                touched = self.contact_lead(block, person, first)
            if rng.random() < 0.35:
                touched |= self.webinars(block, person, first, rng.choices((1, 2, 3), (0.6, 0.3, 0.1))[0])
            if rng.random() < 0.3:
                touched |= self.single_form(block, person, "download", first) is not None
            if rng.random() < 0.2:
                newsletter_at = self.single_form(block, person, "newsletter", first)
        else:
            if rng.random() < 0.45:
                newsletter_at = self.single_form(block, person, "newsletter", first)
            if rng.random() < 0.35:
                touched |= self.single_form(block, person, "download", first) is not None
            if rng.random() < 0.15:
                touched |= self.webinars(block, person, first, rng.choices((1, 2), (0.8, 0.2))[0])
            if rng.random() < 0.4:
                touched |= self.buyer(block, person, first)
        if not touched and newsletter_at is None:
            newsletter_at = first
            self.add_form(block, person, "newsletter", first, self.touch())
        self.crm(block, person)
        in_brevo = self.q_brevo.hit()
        if in_brevo:
            block.brevo_contacts.append({"email": person.email, "attributes": {
                "FIRSTNAME": person.first_name, "LASTNAME": person.last_name}})
            self.counts["brevo_seeded"] += 1
        emailable_from = self.start if in_brevo else newsletter_at
        if emailable_from is not None:
            self.engagement(block, person, emailable_from)
        if index in self.live_people:
            form_id = "contact" if person.segment == "B2B" else rng.choice(("newsletter", "download"))
            block.live.append((form_id, self.form(person, form_id, self.touch())))

    def single_form(self, block: Block, person: Person, form_id: str, first: int) -> int | None:
        ts = self.at(first, self.end)
        if ts is not None:
            self.add_form(block, person, form_id, ts, self.touch())
        return ts

    def contact_lead(self, block: Block, person: Person, first: int) -> bool:
        """A B2B contact-form lead: repeats while in nurture or after 90+ days, and maybe a demo booking."""
        rng = self.rng
        touch = self.touch()
        self.add_form(block, person, "contact", first, touch)
        again = first + rng.randrange(3 * DAY, 20 * DAY)
        if again < self.end and self.q_nurture_repeat.hit():
            self.add_form(block, person, "contact", again, self.touch())
            self.counts["repeat_contact_in_nurture"] += 1
        if first + 91 * DAY < self.end and self.q_late_repeat.hit():
            self.add_form(block, person, "contact", rng.randrange(first + 91 * DAY, self.end), self.touch())
            self.counts["repeat_contact_after_90_days"] += 1
        created = first + rng.randrange(DAY, 6 * DAY)
        if created < self.end - HOUR and self.q_booking.hit():
            self.booking(block, person, created, touch)
        return True

    def demo_slot(self, after: int) -> tuple[int, int]:
        """A 30-minute slot in US office hours, 2-14 days after ``after``."""
        day = (after // DAY + self.rng.randrange(2, 15)) * DAY
        start = day + 14 * HOUR + self.rng.randrange(0, 14) * 30 * 60
        return start, start + 30 * 60

    def booking(self, block: Block, person: Person, created: int, touch: dict[str, str]) -> None:
        rng = self.rng
        start, end = self.demo_slot(created)
        body = {"email": self.submitted_email(person).strip(), "name": person.name,
                "event_name": rng.choices(("Product demo", "Discovery call"), (0.8, 0.2))[0],
                "start_time": iso(start), "end_time": iso(end), "created_at": iso(created),
                **{k: v for k, v in touch.items() if k in ("utm_source", "utm_medium", "utm_campaign")}}
        followup = None
        cancel_by = min(start, self.end) - HOUR
        if cancel_by > created + HOUR:
            if self.q_reschedule.hit():
                canceled = rng.randrange(created + HOUR, cancel_by)
                shift = rng.randrange(1, 8) * DAY
                # Every other reschedule delivers invitee.created before invitee.canceled (docs/demos.md#reschedule).
                followup = {"canceled_at": iso(canceled),
                            "reverse_order": self.counts["reschedules"] % 2 == 1,
                            "reschedule_to": {"start_time": iso(start + shift), "end_time": iso(end + shift)}}
                self.counts["reschedules"] += 1
                self.counts["reschedules_reverse_order"] += followup["reverse_order"]
            elif self.q_cancel.hit():
                followup = {"canceled_at": iso(rng.randrange(created + HOUR, cancel_by))}
                self.counts["cancellations"] += 1
        block.bookings.append(body)
        block.booking_followups.append(followup)
        self.counts["bookings"] += 1

    def buyer(self, block: Block, person: Person, first_touch: int) -> bool:
        """A B2C buyer: a first purchase, maybe Day 3 and Day 8 repeats or a purchase after Day 15,
        refunds, and maybe a membership with renewals and churn."""
        rng = self.rng
        first = self.at(first_touch, self.end - HOUR) or first_touch
        touch = self.touch()
        times = [first]
        if first + 9 * DAY < self.end and self.q_repeat_buyer.hit():
            times += [first + day * DAY + rng.randrange(0, 6 * HOUR) for day in (3, 8)]
            self.counts["repeat_buyers"] += 1
        if first + 17 * DAY < self.end and self.q_late_purchase.hit():
            times.append(rng.randrange(first + 16 * DAY, self.end))
            self.counts["purchases_after_day_15"] += 1
        for ts in times:
            self.purchase(block, person, ts, touch)
        # A membership may predate the first one-off purchase; it needs room for at least one renewal.
        latest_start = self.end - (SUBSCRIPTION_INTERVAL_DAYS + 2) * DAY
        if latest_start >= self.start and self.q_subscription.hit():
            self.subscription(block, person, rng.randrange(self.start, latest_start + 1))
        return True

    def purchase(self, block: Block, person: Person, ts: int, touch: dict[str, str]) -> None:
        rng = self.rng
        product_id, product_name, amount, _ = rng.choices(PRODUCTS, [p[3] for p in PRODUCTS])[0]
        quantity = 2 if product_id == "prod_toolkit" and rng.random() < 0.1 else 1
        body = {"email": self.submitted_email(person).strip(), "name": person.name, "product_id": product_id,
                "product_name": product_name, "amount": amount * quantity, "quantity": quantity,
                "currency": "usd", "created_at": iso(ts),
                **{k: v for k, v in touch.items() if k in ("utm_source", "utm_medium", "utm_campaign")}}
        refund_at = None
        refund_ts = ts + rng.randrange(HOUR, 10 * DAY)
        if refund_ts < self.end and self.q_refund.hit():
            refund_at = iso(refund_ts)
            self.counts["refunds"] += 1
        block.purchases.append(body)
        block.refund_times.append(refund_at)
        self.counts["purchases"] += 1

    def subscription(self, block: Block, person: Person, started: int) -> None:
        """Monthly renewals to the end of the window; some churn by cancellation, some by an unpaid
        renewal at least 15 days before the end (so the 14-day rule of docs/churn.md#churn can see it)."""
        rng = self.rng
        interval = SUBSCRIPTION_INTERVAL_DAYS * DAY
        cycles = [started + k * interval for k in range(1, (self.end - started) // interval + 1)]
        cycles = [ts for ts in cycles if ts < self.end]
        renewals = [{"at": iso(ts), "paid": True} for ts in cycles]
        cancel = None
        if cycles and self.q_sub_cancel.hit():
            paid = rng.randrange(len(cycles))
            renewals = renewals[:paid]
            cancel = {"at": iso(cycles[paid])}
            self.counts["churns_by_cancellation"] += 1
        else:
            unpaid_candidates = [i for i, ts in enumerate(cycles) if ts <= self.end - 15 * DAY]
            if unpaid_candidates and self.q_sub_unpaid.hit():
                unpaid = rng.choice(unpaid_candidates)
                renewals = renewals[:unpaid] + [{"at": renewals[unpaid]["at"], "paid": False}]
                self.counts["churns_by_unpaid_renewal"] += 1
        block.subscriptions.append({"email": person.email, "name": person.name, "product_id": MEMBERSHIP[0],
                                    "started_at": iso(started), "amount": MEMBERSHIP[2],
                                    "interval_days": SUBSCRIPTION_INTERVAL_DAYS})
        block.subscription_plans.append((renewals, cancel))
        self.counts["subscriptions"] += 1
        self.counts["renewals"] += sum(1 for r in renewals if r["paid"])
        self.counts["unpaid_renewals"] += sum(1 for r in renewals if not r["paid"])

    def crm(self, block: Block, person: Person) -> None:
        """~15 % already in HubSpot before the window: owners, original sources, some customers."""
        rng = self.rng
        if not (self.q_crm_b2b if person.segment == "B2B" else self.q_crm_b2c).hit():
            return
        created = self.start - rng.randrange(10 * DAY, 700 * DAY)
        properties = {"email": person.email, "firstname": person.first_name, "lastname": person.last_name,
                      "hs_analytics_source": rng.choice(HS_SOURCES)}
        if person.organization:
            properties["company"] = person.organization
        if person.phone:
            properties["phone"] = person.phone
        if rng.random() < 0.85:
            properties["hubspot_owner_id"] = rng.choice(OWNER_IDS)
            self.counts["crm_with_owner"] += 1
        if self.q_crm_customer.hit():
            properties["lifecyclestage"] = "customer"
            self.counts["crm_customers"] += 1
        else:
            properties["lifecyclestage"] = rng.choice(
                ("lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "subscriber"))
        if self.q_crm_touch.hit():
            source, _, campaign = rng.choice(CAMPAIGNS)
            properties["original_touch_source"] = source
            properties["original_touch_campaign"] = campaign
            properties["original_touch_at"] = iso(rng.randrange(created, self.start))
            self.counts["crm_with_original_touch"] += 1
        block.crm.append({"properties": properties, "createdate": iso(created)})
        self.counts["crm_seeded"] += 1

    def engagement(self, block: Block, person: Person, since: int) -> None:
        """Opens and clicks shaped for the engagement tiers (docs/engagement.md#engagement-tiers): recent clickers, openers within 90 days,
        early-then-silent (quiet), never; a few hard bounces (nothing after them) and unsubscribes."""
        rng = self.rng
        quiet_until = self.end - 91 * DAY
        profiles = ["most_engaged", "engaged", "never"] + (["quiet"] if since < quiet_until - 7 * DAY else [])
        weights = [0.3, 0.3, 0.2] + ([0.25] if len(profiles) == 4 else [])
        profile = rng.choices(profiles, weights)[0]
        events: list[tuple[int, str]] = []
        if profile == "quiet":
            events += [(rng.randrange(since, quiet_until), "opened") for _ in range(rng.randrange(2, 10))]
            events += [(rng.randrange(since, quiet_until), "clicked") for _ in range(rng.randrange(0, 3))]
        elif profile != "never":
            events += [(rng.randrange(since, self.end), "opened") for _ in range(rng.randrange(4, 25))]
            recent = self.end - 30 * DAY
            if profile == "most_engaged":
                events.append((rng.randrange(max(since, recent), self.end), "clicked"))
                events += [(rng.randrange(since, self.end), "clicked") for _ in range(rng.randrange(0, 5))]
            else:
                events.append((rng.randrange(max(since, self.end - 90 * DAY), self.end), "opened"))
                if since < recent:
                    events += [(rng.randrange(since, recent), "clicked") for _ in range(rng.randrange(0, 3))]
        events.sort()
        if self.q_bounce.hit():
            bounced = self.at(since, self.end) or since
            events = [e for e in events if e[0] < bounced] + [(bounced, "hard_bounce")]
        elif events:
            after = events[-1][0] + rng.randrange(HOUR, 20 * DAY)
            if after < self.end and self.q_unsubscribe.hit():
                events.append((after, "unsubscribed"))
        for ts, kind in events:
            self.brevo_event(block, person, kind, ts)

    def brevo_event(self, block: Block, person: Person, kind: str, ts: int) -> None:
        """One engagement event; about half of those after the first newsletter are on the latest one."""
        event = {"email": person.email, "event": kind, "at": iso(ts)}
        if kind == "clicked":
            event["link"] = self.rng.choice(BLOG_LINKS)
        sent = bisect.bisect_right([campaign[2] for campaign in self.campaigns], ts)
        if self.newsletter_rng.random() < NEWSLETTER_SHARE and sent:
            campaign_id, name, sent_at = self.campaigns[sent - 1]
            event.update(campaign_id=campaign_id, campaign_name=name, campaign_sent_at=iso(sent_at))
            self.counts["newsletter_events"] += 1
        block.brevo_events.append(event)
        self.brevo_event_counts[kind] += 1

    def blocks(self, size: int = BLOCK_CONTACTS) -> Iterator[Block]:
        for first in range(0, self.contacts, size):
            block = Block()
            for index in range(first, min(first + size, self.contacts)):
                self.contact(block, index)
            yield block


class Client:
    """HTTP to the sandbox (admin + vendor APIs) and the collector, a few calls at a time."""

    def __init__(self, http: httpx.AsyncClient, sandbox_url: str, collector_url: str | None) -> None:
        self.http = http
        self.sandbox_url = sandbox_url.rstrip("/")
        self.collector_url = collector_url.rstrip("/") if collector_url else None
        self.gate = asyncio.Semaphore(CONCURRENCY)
        self.brevo_lock = asyncio.Lock()
        self.calls: collections.Counter[str] = collections.Counter()
        self.brevo_headers = {"api-key": env("BREVO_API_KEY", "xkeysib-sandbox"),
                              "accept": "application/json"}

    async def request(self, method: str, path: str, *, expect: tuple[int, ...], json_body: object = None,
                      headers: dict[str, str] | None = None, params: dict | None = None,
                      template: str | None = None) -> httpx.Response:
        """One call; a 429 is waited out per its Retry-After (rate limiting is not a failure).
        Calls are counted per path template, for the summary (what a run costs, and proof of determinism)."""
        for _ in range(MAX_RATE_LIMIT_RETRIES):
            self.calls[f"{method} {template or path}"] += 1
            async with self.gate:
                response = await self.http.request(method, self.sandbox_url + path, json=json_body,
                                                   headers=headers, params=params)
            if response.status_code != 429:
                break
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        if response.status_code not in expect:
            raise WorldError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response

    async def admin(self, path: str, items: list[dict], template: str | None = None) -> list:
        """A bulk admin call: a list in, one result per item out, in order."""
        response = await self.request("POST", "/_sandbox" + path, json_body=items, expect=(200, 201),
                                      template=template and "/_sandbox" + template)
        results = response.json()
        if not isinstance(results, list) or len(results) != len(items):
            raise WorldError(f"POST /_sandbox{path} returned {type(results).__name__} for {len(items)} items")
        return results

    async def admin_tally(self, path: str, items: list[dict], key: str) -> None:
        """A bulk admin call that answers with a tally instead of one result per item: the HubSpot seed's
        ``{"ids": [...]}`` or Brevo's ``{"recorded": n}``. Every item must have been taken."""
        body = (await self.request("POST", "/_sandbox" + path, json_body=items, expect=(200, 201))).json()
        value = body.get(key) if isinstance(body, dict) else None
        taken = len(value) if isinstance(value, list) else value
        if taken != len(items):
            raise WorldError(f"POST /_sandbox{path} took {taken} of {len(items)} items")

    async def brevo(self, method: str, path: str, *, expect: tuple[int, ...], json_body: object = None,
                    params: dict | None = None) -> httpx.Response:
        """Brevo contacts endpoints, paced under their 10-per-second limit."""
        async with self.brevo_lock:
            response = await self.request(method, "/brevo/v3" + path, json_body=json_body, expect=expect,
                                          headers=self.brevo_headers, params=params)
            await asyncio.sleep(BREVO_CONTACTS_SPACING)
        return response


async def newsletter_list(client: Client) -> int:
    """The Brevo list the pre-existing marketing contacts are imported into (found, or created)."""
    offset = 0
    while True:
        page = (await client.brevo("GET", "/contacts/lists", expect=(200,),
                                   params={"limit": 50, "offset": offset})).json()
        lists = page.get("lists") or []
        for item in lists:
            if item.get("name") == NEWSLETTER_LIST:
                return int(item["id"])
        offset += len(lists)
        if not lists or offset >= int(page.get("count") or 0):
            break
    created = await client.brevo("POST", "/contacts/lists", expect=(201,),
                                 json_body={"name": NEWSLETTER_LIST, "folderId": 1})
    return int(created.json()["id"])


def chunks(items: list, size: int) -> Iterator[list]:
    for first in range(0, len(items), size):
        yield items[first:first + size]


async def send_block(client: Client, block: Block, list_id: int) -> None:
    """Phase 1 creates what exists on its own; phase 2 follows up on the ids phase 1 returned."""
    async def brevo_import(contacts: list[dict]) -> None:
        await client.brevo("POST", "/contacts/import", expect=(202,), json_body={
            "jsonBody": contacts, "listIds": [list_id], "updateExistingContacts": True,
            "emptyContactsAttributes": False, "disableNotification": True})

    async def created(path: str, items: list[dict]) -> list:
        """Chunks sent side by side; gather keeps their order, so results align with the follow-ups."""
        results = await asyncio.gather(*(client.admin(path, chunk) for chunk in chunks(items, WEBHOOK_CHUNK)))
        return [result for chunk in results for result in chunk]

    phase1 = [client.admin_tally("/hubspot/contacts", chunk, "ids")
              for chunk in chunks(block.crm, ADMIN_CHUNK)]
    phase1 += [brevo_import(chunk) for chunk in chunks(block.brevo_contacts, BREVO_IMPORT_CHUNK)]
    brevo_events = block.brevo_events if client.collector_url else [
        {k: v for k, v in event.items() if not k.startswith("campaign_")} for event in block.brevo_events]
    phase1 += [client.admin_tally("/brevo/events", chunk, "recorded")
               for chunk in chunks(brevo_events, BREVO_EVENT_CHUNK)]
    booking_results, purchase_results, subscription_results, *_ = await asyncio.gather(
        created("/calendly/bookings", block.bookings), created("/stripe/purchases", block.purchases),
        created("/stripe/subscriptions", block.subscriptions), *phase1)

    cancellations = [{"invitee_uri": result["invitee_uri"], **followup}
                     for result, followup in zip(booking_results, block.booking_followups, strict=True) if followup]
    refunds = [{"session_id": result["session_id"], "created_at": at}
               for result, at in zip(purchase_results, block.refund_times, strict=True) if at]

    async def subscription_followups(sub_id: str, renewals: list[dict], cancel: dict | None) -> None:
        path = f"/stripe/subscriptions/{quote(sub_id, safe='')}"
        if renewals:
            await client.admin(path + "/renew", renewals, "/stripe/subscriptions/{id}/renew")
        if cancel:
            await client.admin(path + "/cancel", [cancel], "/stripe/subscriptions/{id}/cancel")

    phase2 = [client.admin("/calendly/cancellations", chunk)
              for chunk in chunks(cancellations, WEBHOOK_CHUNK)]
    phase2 += [client.admin("/stripe/refunds", chunk) for chunk in chunks(refunds, WEBHOOK_CHUNK)]
    phase2 += [subscription_followups(result["id"], renewals, cancel)
               for result, (renewals, cancel) in zip(subscription_results, block.subscription_plans, strict=True)
               if renewals or cancel]
    await asyncio.gather(*phase2)


async def send_live_forms(client: Client, forms: list[tuple[str, dict]],
                          bad: tuple[tuple[str, dict], ...]) -> dict:
    """Live submissions through the collector: good ones must get 202, bad ones 422."""
    outcome = {"sent": 0, "accepted": 0, "rejected": 0, "failed": 0}
    if client.collector_url is None:
        return outcome
    for expected, batch in ((202, forms), (422, bad)):
        for form_id, fields in batch:
            outcome["sent"] += 1
            try:
                response = await client.http.post(f"{client.collector_url}/forms/{form_id}", json=fields)
                status = response.status_code
            except httpx.HTTPError:
                status = None
            if status == expected:
                outcome["accepted" if expected == 202 else "rejected"] += 1
            else:
                outcome["failed"] += 1
    return outcome


async def generate(world: World, sandbox_url: str, forms: TextIO, collector_url: str | None = None) -> dict:
    """Build the world into the sandbox, its historical forms into ``forms``; returns the summary."""
    live: list[tuple[str, dict]] = []
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        client = Client(http, sandbox_url, collector_url)
        list_id = await newsletter_list(client)
        for block in world.blocks():
            # Written between blocks, when no call is in flight: the blocking write holds nothing up.
            forms.writelines(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
                             for row in block.forms)
            live += block.live
            await send_block(client, block, list_id)
        # Brevo imports are processed after their 202: the world is complete once they are.
        await client.request("POST", "/_sandbox/brevo/imports/wait", expect=(200,))
        live_outcome = await send_live_forms(client, live, BAD_LIVE_FORMS)
    return summary(world, live_outcome, client.calls)


def summary(world: World, live: dict, calls: collections.Counter[str]) -> dict:
    c = world.counts
    calendly_events = c["bookings"] + c["cancellations"] + 2 * c["reschedules"]
    stripe_events = (c["purchases"] + c["refunds"] + 2 * c["subscriptions"] + c["renewals"]
                     + c["unpaid_renewals"] + c["churns_by_cancellation"])
    forms_total = sum(world.forms.values())
    brevo_events = sum(world.brevo_event_counts.values())
    raw_events = (forms_total + live["accepted"] + calendly_events + stripe_events + c["crm_seeded"]
                  + c["brevo_seeded"] + brevo_events)
    return {
        "contacts": world.contacts,
        "segments": {"B2B": c["B2B"], "B2C": c["B2C"]},
        "window": {"start": iso(world.start), "end": iso(world.end)},
        "forms": {form_id: world.forms[form_id] for form_id in FORM_IDS},
        "forms_total": forms_total,
        "bad_records": c["bad_records"],
        "webinar_duplicates": c["webinar_duplicates"],
        "unknown_webinar_codes": c["unknown_webinar_codes"],
        "unknown_org_type_contacts": c["unknown_org_type_contacts"],
        "repeat_contact_in_nurture": c["repeat_contact_in_nurture"],
        "repeat_contact_after_90_days": c["repeat_contact_after_90_days"],
        "live_forms": live,
        "bookings": c["bookings"],
        "reschedules": c["reschedules"],
        "reschedules_reverse_order": c["reschedules_reverse_order"],
        "cancellations": c["cancellations"],
        "purchases": c["purchases"],
        "repeat_buyers": c["repeat_buyers"],
        "purchases_after_day_15": c["purchases_after_day_15"],
        "refunds": c["refunds"],
        "subscriptions": c["subscriptions"],
        "renewals": c["renewals"],
        "unpaid_renewals": c["unpaid_renewals"],
        "churns": c["churns_by_cancellation"] + c["churns_by_unpaid_renewal"],
        "churns_by_cancellation": c["churns_by_cancellation"],
        "churns_by_unpaid_renewal": c["churns_by_unpaid_renewal"],
        "crm_seeded": c["crm_seeded"],
        "crm_with_owner": c["crm_with_owner"],
        "crm_customers": c["crm_customers"],
        "crm_with_original_touch": c["crm_with_original_touch"],
        "brevo_seeded": c["brevo_seeded"],
        "brevo_events": brevo_events,
        "brevo_events_by_type": dict(sorted(world.brevo_event_counts.items())),
        "newsletter_campaigns": len(world.campaigns),
        "newsletter_events": c["newsletter_events"],
        "raw_events": raw_events,
        "events_per_contact": round(raw_events / world.contacts, 2),
        "sandbox_calls": dict(sorted(calls.items())),
    }


def run(contacts: int, seed: int, sandbox_url: str, forms_out: Path, *, collector_url: str | None = None,
        start: date | None = None, days: int = 120, live_forms: int | None = None) -> dict:
    """The ``world`` sub-command: generate, print nothing, return the summary."""
    if contacts < 1 or days < 1:
        raise WorldError("--contacts and --days must be at least 1")
    world = World(contacts, seed, start or default_start(days), days,
                  min(20, contacts) if live_forms is None else live_forms)
    forms_out = Path(forms_out)
    forms_out.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed at the end, so an interrupted run never leaves a file that looks complete.
    partial = forms_out.with_name(forms_out.name + ".partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="\n") as forms:
            result = asyncio.run(generate(world, sandbox_url, forms, collector_url))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, forms_out)
    return result


def main(args: argparse.Namespace) -> int:
    """Entry point for ``python -m sandbox world``: the JSON summary on stdout, errors on stderr."""
    try:
        result = run(args.contacts, args.seed, args.sandbox_url, Path(args.forms_out),
                     collector_url=args.collector_url, start=args.start, days=args.days,
                     live_forms=args.live_forms)
    except (WorldError, httpx.HTTPError) as exc:
        print(f"world: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
