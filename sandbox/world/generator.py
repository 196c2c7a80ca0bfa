"""The synthetic company's history: people and their timelines, drawn from one seeded generator, block
by block."""

from __future__ import annotations

import bisect
import collections
import random
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from urllib.parse import urlencode

from sandbox.world.vocabulary import (
    B2B_TYPES,
    BLOCK_CONTACTS,
    BLOG_LINKS,
    CAMPAIGNS,
    DAY,
    FIRST_NAMES,
    FREE_MAIL,
    HOUR,
    HS_SOURCES,
    LAST_NAMES,
    MAX_ORGS,
    MEMBERSHIP,
    NEWSLETTER_EVERY_DAYS,
    NEWSLETTER_SHARE,
    NEWSLETTER_TOPICS,
    ORG_NAMES,
    OWNER_IDS,
    PLACES,
    PRODUCTS,
    REFERRERS,
    SITE,
    SUBSCRIPTION_INTERVAL_DAYS,
    UNKNOWN_ORG_TYPES,
    UNKNOWN_WEBINAR_CODES,
    WEBINAR_CODES,
    Block,
    Org,
    Person,
    Quota,
    iso,
)


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

