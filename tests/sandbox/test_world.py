"""The world generator (``python -m sandbox world``): deterministic, and every case of the behaviour rules (docs/) is in it.

One generated world (200 contacts, through the real CLI, with a live collector receiving the webhooks and
live forms) is inspected through the files it wrote, the collector's landing zone and the emulated APIs.
The determinism tests run the generator in-process against a freshly reset sandbox.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from ingestion.backfill import import_forms
from ingestion.collector.app import create_collector_app
from ingestion.landing import LandingZone, landing_files
from orchestration.services import free_port
from sandbox import world
from sandbox.__main__ import main as sandbox_main
from tests.servers import serve

ROOT = Path(__file__).resolve().parents[2]
CONTACTS = 200
SEED = 11
START = date(2025, 1, 6)
DAYS = 120
CALENDLY = {"Authorization": "Bearer calendly-sandbox"}
STRIPE = {"Authorization": "Bearer sk_test_sandbox"}
HUBSPOT = {"Authorization": "Bearer pat-sandbox"}
BREVO = {"api-key": "xkeysib-sandbox"}
BREVO_WEBHOOK_TOKEN = "brevo-webhook-world"
NEWSLETTER_EVENT_KINDS = {"opened": "opened", "click": "clicked", "unsubscribe": "unsubscribed",
                          "hard_bounce": "hard_bounce"}
"""Brevo's marketing webhook event names, as the world generator's summary counts them."""
VALID_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
KNOWN_ORG_TYPES = {"Provider Organization", "Assisted Living", "YMCA", "Home Care Agency", "Hospital",
                   "Individual", ""}
DAY = 86400


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def landed(root: Path, stream: str) -> list[dict]:
    """Every landed record of a stream, in landing order."""
    return [json.loads(line) for path in landing_files(root, stream)
            for line in path.read_text(encoding="utf-8").splitlines()]


def calendly_organization(sandbox_url: str) -> str:
    me = httpx.get(f"{sandbox_url}/calendly/users/me", headers=CALENDLY).json()
    return me["resource"]["current_organization"]


def register_webhooks(sandbox_url: str, collector_url: str) -> str:
    """Subscribe the collector to every Calendly and Stripe event and to Brevo's marketing events; returns the
    Stripe signing secret."""
    org = calendly_organization(sandbox_url)
    httpx.post(f"{sandbox_url}/calendly/webhook_subscriptions", headers=CALENDLY, json={
        "url": f"{collector_url}/webhooks/calendly", "events": ["invitee.created", "invitee.canceled"],
        "organization": org, "scope": "organization", "signing_key": "calendly-signing-sandbox",
    }).raise_for_status()
    endpoint = httpx.post(f"{sandbox_url}/stripe/v1/webhook_endpoints", headers=STRIPE, data={
        "url": f"{collector_url}/webhooks/stripe", "enabled_events[]": "*"})
    endpoint.raise_for_status()
    httpx.post(f"{sandbox_url}/brevo/v3/webhooks", headers=BREVO, json={
        "url": f"{collector_url}/webhooks/brevo", "type": "marketing", "batched": True,
        "events": ["opened", "click", "hardBounce", "unsubscribed", "spam"],
        "auth": {"type": "bearer", "token": BREVO_WEBHOOK_TOKEN}}).raise_for_status()
    return endpoint.json()["secret"]


@pytest.fixture(scope="module")
def generated(sandbox_server, tmp_path_factory) -> dict:
    """One world built through the CLI into a reset sandbox, with a collector landing its webhooks."""
    sandbox_url, _ = sandbox_server
    httpx.post(f"{sandbox_url}/_sandbox/reset").raise_for_status()
    tmp = tmp_path_factory.mktemp("world")
    landing_root = tmp / "landing"
    app = create_collector_app(LandingZone(landing_root, "collector"),
                               calendly_signing_key="calendly-signing-sandbox",
                               stripe_webhook_secret="whsec_sandbox", brevo_webhook_token=BREVO_WEBHOOK_TOKEN)
    with serve(app) as collector_url:
        assert register_webhooks(sandbox_url, collector_url) == "whsec_sandbox"
        forms_out = tmp / "forms.jsonl"
        done = subprocess.run(
            [sys.executable, "-m", "sandbox", "world", "--contacts", str(CONTACTS), "--seed", str(SEED),
             "--sandbox-url", sandbox_url, "--collector-url", collector_url, "--forms-out", str(forms_out)],
            cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        # A delivery can hit a transient failure (e.g. a keep-alive connection the server just closed);
        # the sandbox retries it, like the vendors do. Run the due retries now instead of waiting.
        httpx.post(f"{sandbox_url}/_sandbox/webhooks/flush").raise_for_status()
        deliveries = httpx.get(f"{sandbox_url}/_sandbox/webhooks").json()
    # At-least-once delivery: deduplicated by the sources' own ids, as the pipeline does (docs/sources.md).
    stripe_events = list({r["event"]["id"]: r["event"] for r in landed(landing_root, "stripe")}.values())
    calendly_events = list({(r["event"]["event"], r["event"]["payload"]["uri"]): r["event"]
                            for r in landed(landing_root, "calendly")}.values())
    return {
        "summary": summary,
        "forms_path": forms_out,
        "forms": [json.loads(line) for line in forms_out.read_text(encoding="utf-8").splitlines()],
        "calendly": calendly_events,
        "stripe": stripe_events,
        "live_forms": landed(landing_root, "forms"),
        "newsletter": [r["event"] for r in landed(landing_root, "brevo")],
        "deliveries": deliveries,
        "sandbox_url": sandbox_url,
        "window": (parse(summary["window"]["start"]), parse(summary["window"]["end"])),
        # Inspected right away: other tests reset the shared sandbox.
        "hubspot": hubspot_contacts(sandbox_url),
        "brevo": brevo_state(sandbox_url),
        "calendly_canceled": calendly_canceled_events(sandbox_url),
        "line_item_products": line_item_products(sandbox_url, stripe_events),
    }


def line_item_products(sandbox_url: str, events: list[dict]) -> set[str]:
    """Products of a few checkout sessions, read back through Stripe's line-items endpoint."""
    sessions = [e["data"]["object"]["id"] for e in events if e["type"] == "checkout.session.completed"][:5]
    products = set()
    for session_id in sessions:
        answer = httpx.get(f"{sandbox_url}/stripe/v1/checkout/sessions/{session_id}/line_items",
                           headers=STRIPE)
        answer.raise_for_status()
        products |= {item["price"]["product"] for item in answer.json()["data"]}
    return products


def hubspot_contacts(sandbox_url: str) -> list[dict]:
    contacts, after = [], None
    while True:
        params = {"limit": 100, "properties": "email,hubspot_owner_id,lifecyclestage,hs_analytics_source,"
                                              "original_touch_source,original_touch_at,createdate"}
        if after:
            params["after"] = after
        page = httpx.get(f"{sandbox_url}/hubspot/crm/v3/objects/contacts", headers=HUBSPOT,
                         params=params).json()
        contacts += page["results"]
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            return contacts


def brevo_state(sandbox_url: str) -> dict:
    base = f"{sandbox_url}/brevo/v3"
    events = {}
    for kind in ("opened", "clicks", "unsubscribed", "hardBounces"):
        answer = httpx.get(f"{base}/smtp/statistics/events", headers=BREVO,
                           params={"event": kind, "limit": 5000})
        answer.raise_for_status()
        events[kind] = answer.json().get("events", [])
    lists = httpx.get(f"{base}/contacts/lists", headers=BREVO, params={"limit": 50}).json()["lists"]
    count = httpx.get(f"{base}/contacts", headers=BREVO, params={"limit": 1}).json()["count"]
    return {"events": events, "lists": lists, "count": count}


def calendly_canceled_events(sandbox_url: str) -> int:
    org = calendly_organization(sandbox_url)
    total, token = 0, None
    while True:
        params = {"organization": org, "status": "canceled", "count": 100}
        if token:
            params["page_token"] = token
        page = httpx.get(f"{sandbox_url}/calendly/scheduled_events", headers=CALENDLY, params=params).json()
        total += len(page["collection"])
        token = page["pagination"]["next_page_token"]
        if not token:
            return total


# -- the summary ----------------------------------------------------------------------------------------


def test_summary_holds_every_case_at_about_ten_events_per_contact(generated):
    s = generated["summary"]
    assert s["contacts"] == CONTACTS
    assert s["segments"]["B2B"] + s["segments"]["B2C"] == CONTACTS
    assert 0.3 < s["segments"]["B2B"] / CONTACTS < 0.6
    for key in ("bad_records", "webinar_duplicates", "unknown_webinar_codes", "unknown_org_type_contacts",
                "repeat_contact_in_nurture", "repeat_contact_after_90_days", "bookings", "cancellations",
                "purchases", "repeat_buyers", "purchases_after_day_15", "refunds", "subscriptions",
                "renewals", "churns_by_cancellation", "churns_by_unpaid_renewal", "crm_seeded",
                "crm_with_owner", "crm_customers", "crm_with_original_touch", "brevo_seeded"):
        assert s[key] > 0, key
    assert s["reschedules"] >= 2 and 0 < s["reschedules_reverse_order"] < s["reschedules"]
    assert s["churns"] == s["churns_by_cancellation"] + s["churns_by_unpaid_renewal"]
    assert set(s["brevo_events_by_type"]) == {"opened", "clicked", "unsubscribed", "hard_bounce"}
    assert all(s["forms"][form_id] > 0 for form_id in ("contact", "newsletter", "download", "webinar"))
    assert 7 <= s["events_per_contact"] <= 13
    assert s["live_forms"] == {"sent": 22, "accepted": 20, "rejected": 2, "failed": 0}
    window_start, window_end = generated["window"]
    assert window_end.date() == datetime.now(UTC).date()
    assert (window_end - window_start).days == DAYS


# -- the forms backfill file ----------------------------------------------------------------------------


def test_forms_file_is_a_backfill_with_every_form_case(generated):
    rows, s = generated["forms"], generated["summary"]
    window_start, window_end = generated["window"]
    assert collections.Counter(r["form_id"] for r in rows) == s["forms"]
    assert all(window_start <= parse(r["submitted_at"]) < window_end for r in rows)
    invalid = [r["email"] for r in rows if not VALID_EMAIL.fullmatch(r["email"].strip())]
    assert len(invalid) == s["bad_records"]
    assert any(e.endswith("@") for e in invalid) and any(e.startswith("@") for e in invalid)
    assert any("@" not in e for e in invalid)
    emails = [r["email"] for r in rows]
    assert any(e != e.strip() for e in emails) and any(e.strip() != e.strip().lower() for e in emails)
    assert {r.get("consent") for r in rows} >= {True, False}

    webinars = [(r["email"].strip().lower(), r["webinar_code"]) for r in rows if r["form_id"] == "webinar"]
    assert sum(n - 1 for n in collections.Counter(webinars).values()) >= s["webinar_duplicates"]
    codes = {code for _, code in webinars}
    assert codes & {f"WB00{n}" for n in range(1, 7)} and codes - {f"WB00{n}" for n in range(1, 7)}
    per_email = collections.Counter(email for email, _ in webinars)
    assert max(per_email.values()) >= 3

    org_types = {r["org_type"] for r in rows if "org_type" in r}
    assert {"Provider Organization", "Assisted Living", "YMCA"} <= org_types
    assert org_types - KNOWN_ORG_TYPES

    touched = [r for r in rows if "utm_source" in r or "referrer" in r]
    with_utm = [r for r in rows if "utm_source" in r]
    assert 0.45 < len(with_utm) / len(rows) < 0.75 and len(touched) < len(rows)

    contact_times = collections.defaultdict(list)
    for r in rows:
        if r["form_id"] == "contact" and VALID_EMAIL.fullmatch(r["email"].strip()):
            contact_times[r["email"].strip().lower()].append(parse(r["submitted_at"]))
    gaps = [(max(t) - min(t)).days for t in contact_times.values() if len(t) > 1]
    assert any(g < 21 for g in gaps) and any(g >= 90 for g in gaps)


def test_forms_file_imports_through_the_backfill_with_bad_records_flagged(generated, tmp_path):
    report = import_forms(generated["forms_path"], LandingZone(tmp_path, "import"))
    assert report.rejected == []
    assert report.landed == generated["summary"]["forms_total"]
    assert report.flagged == generated["summary"]["bad_records"]
    submitted = sorted(r["submitted_at"] for r in landed(tmp_path, "forms"))
    assert submitted == sorted(r["submitted_at"].replace("Z", ".000000Z") for r in generated["forms"])


# -- Calendly -----------------------------------------------------------------------------------------


def test_calendly_bookings_reschedules_in_both_orders_and_cancellations(generated):
    events, s = generated["calendly"], generated["summary"]
    created = [e for e in events if e["event"] == "invitee.created"]
    canceled = [e for e in events if e["event"] == "invitee.canceled"]
    assert len(created) == s["bookings"] + s["reschedules"]
    assert len(canceled) == s["reschedules"] + s["cancellations"]
    assert sum(not e["payload"]["rescheduled"] for e in canceled) == s["cancellations"]

    position = {(e["event"], e["payload"]["uri"]): i for i, e in enumerate(events)}
    orders = collections.Counter()
    for old in (e for e in canceled if e["payload"]["rescheduled"]):
        new_uri = old["payload"]["new_invitee"]
        new = next(e for e in created if e["payload"]["uri"] == new_uri)
        assert new["payload"]["old_invitee"] == old["payload"]["uri"]
        assert new["payload"]["email"] == old["payload"]["email"]
        canceled_at = position[("invitee.canceled", old["payload"]["uri"])]
        canceled_first = canceled_at < position[("invitee.created", new_uri)]
        orders["canceled first" if canceled_first else "created first"] += 1
    assert orders == {"canceled first": s["reschedules"] - s["reschedules_reverse_order"],
                      "created first": s["reschedules_reverse_order"]}

    window_start, window_end = generated["window"]
    for e in created:
        booked = parse(e["payload"]["created_at"])
        starts = parse(e["payload"]["scheduled_event"]["start_time"])
        assert window_start <= booked < window_end and starts > booked
    assert any(e["payload"]["tracking"]["utm_campaign"] for e in created)
    assert generated["calendly_canceled"] == s["reschedules"] + s["cancellations"]


def test_demo_bookings_follow_a_contact_form(generated):
    first_contact: dict[str, datetime] = {}
    for r in generated["forms"]:
        if r["form_id"] == "contact":
            email = r["email"].strip().lower()
            at = parse(r["submitted_at"])
            first_contact[email] = min(first_contact.get(email, at), at)
    for e in generated["calendly"]:
        if e["event"] == "invitee.created" and not e["payload"]["old_invitee"]:
            email = e["payload"]["email"].lower()
            assert email in first_contact
            assert 1 <= (parse(e["payload"]["created_at"]) - first_contact[email]).days <= 6


# -- Stripe ---------------------------------------------------------------------------------------------


def test_stripe_purchases_repeat_buyers_refunds_renewals_and_churn(generated):
    events, s = generated["stripe"], generated["summary"]
    by_type = collections.defaultdict(list)
    for e in events:
        by_type[e["type"]].append(e["data"]["object"])
    assert len(by_type["checkout.session.completed"]) == s["purchases"]
    assert len(by_type["charge.refunded"]) == s["refunds"]
    assert len(by_type["customer.subscription.created"]) == s["subscriptions"]
    cycles = [i for i in by_type["invoice.paid"] if i["billing_reason"] == "subscription_cycle"]
    assert len(cycles) == s["renewals"]
    failed = by_type["invoice.payment_failed"]
    assert len(failed) == s["churns_by_unpaid_renewal"]
    assert all(i["billing_reason"] == "subscription_cycle" and i["status"] == "open" for i in failed)
    assert len(by_type["customer.subscription.deleted"]) == s["churns_by_cancellation"]

    _, window_end = generated["window"]
    assert all(datetime.fromtimestamp(e["created"], UTC) < window_end for e in events)
    for invoice in failed:
        assert window_end.timestamp() - invoice["created"] >= 15 * DAY

    purchases = collections.defaultdict(list)
    for session in by_type["checkout.session.completed"]:
        purchases[session["customer_details"]["email"].lower()].append(session["created"])
    day_offsets = [[(t - min(times)) // DAY for t in sorted(times)] for times in purchases.values()]
    assert any(offsets[:3] == [0, 3, 8] for offsets in day_offsets)
    assert any(offsets[-1] > 15 for offsets in day_offsets)
    assert any(session["metadata"].get("utm_source") for session in by_type["checkout.session.completed"])

    products = generated["line_item_products"]
    assert products and products <= {product[0] for product in world.PRODUCTS}


# -- HubSpot and Brevo ------------------------------------------------------------------------------------


def test_pre_existing_crm_contacts_have_owners_sources_and_history(generated):
    contacts, s = generated["hubspot"], generated["summary"]
    window_start, _ = generated["window"]
    assert len(contacts) == s["crm_seeded"]
    props = [c["properties"] for c in contacts]
    owners = [p["hubspot_owner_id"] for p in props if p.get("hubspot_owner_id")]
    assert len(owners) == s["crm_with_owner"] and set(owners) <= {"101", "102", "103"}
    assert sum(p.get("lifecyclestage") == "customer" for p in props) == s["crm_customers"]
    assert sum(bool(p.get("original_touch_source")) for p in props) == s["crm_with_original_touch"]
    assert all(p.get("hs_analytics_source") for p in props)
    assert all(parse(p["createdate"]) < window_start for p in props)
    assert all(parse(p["original_touch_at"]) < window_start for p in props if p.get("original_touch_at"))


def test_brevo_contacts_and_engagement_tiers(generated):
    brevo, s = generated["brevo"], generated["summary"]
    _, window_end = generated["window"]
    assert brevo["count"] == s["brevo_seeded"]
    newsletter = [lst for lst in brevo["lists"] if lst["name"] == "Newsletter"]
    assert len(newsletter) == 1 and newsletter[0]["uniqueSubscribers"] == s["brevo_seeded"]
    counts = s["brevo_events_by_type"]
    events = brevo["events"]
    # Newsletter engagement came through the marketing webhook, the rest is in the transactional event log.
    newsletter = collections.Counter(NEWSLETTER_EVENT_KINDS[e["event"]] for e in generated["newsletter"])
    assert sum(newsletter.values()) == s["newsletter_events"] > 0
    assert all(newsletter[kind] > 0 for kind in ("opened", "clicked"))
    assert len(events["opened"]) + newsletter["opened"] == counts["opened"]
    assert len(events["clicks"]) + newsletter["clicked"] == counts["clicked"]
    assert len(events["unsubscribed"]) + newsletter["unsubscribed"] == counts["unsubscribed"]
    assert len(events["hardBounces"]) + newsletter["hard_bounce"] == counts["hard_bounce"]
    campaigns = {(e["camp_id"], e["campaign name"], e["ts_sent"]) for e in generated["newsletter"]}
    assert 1 < len(campaigns) <= s["newsletter_campaigns"]
    assert all(e["ts_sent"] <= e["ts_event"] for e in generated["newsletter"])

    # Days since each contact's last open or click, and since the last click (docs/engagement.md#engagement-tiers tiers), over both.
    opens = [(e["email"], parse(e["date"])) for e in events["opened"]] + [
        (e["email"], datetime.fromtimestamp(e["ts_event"], UTC)) for e in generated["newsletter"]
        if e["event"] == "opened"]
    clicks = [(e["email"], parse(e["date"])) for e in events["clicks"]] + [
        (e["email"], datetime.fromtimestamp(e["ts_event"], UTC)) for e in generated["newsletter"]
        if e["event"] == "click"]
    since_any: dict[str, int] = {}
    since_click: dict[str, int] = {}
    for engagement, target in ((opens, since_any), (clicks, since_click)):
        for email, moment in engagement:
            assert moment < window_end
            age = (window_end - moment).days
            target[email] = min(target.get(email, age), age)
    for email, age in since_click.items():
        since_any[email] = min(since_any.get(email, age), age)
    assert any(age < 30 for age in since_click.values())  # most_engaged
    assert any(age < 90 and since_click.get(email, 999) >= 30 for email, age in since_any.items())  # engaged
    assert any(age > 90 for age in since_any.values())  # quiet


# -- the collector ----------------------------------------------------------------------------------------


def test_live_forms_reached_the_collector_and_bad_ones_were_refused(generated):
    live = generated["live_forms"]
    assert len(live) == 20
    assert all(r["origin"] == "collector" for r in live)
    assert all(VALID_EMAIL.fullmatch(r["fields"]["email"].strip()) for r in live)
    assert {r["form_id"] for r in live} <= {"contact", "newsletter", "download"}
    deliveries = generated["deliveries"]
    assert deliveries and [d for d in deliveries if d["status"] != "delivered"] == []
    signed = [d for d in deliveries if d["service"] != "brevo"]
    assert len(signed) == len(generated["calendly"]) + len(generated["stripe"])
    # Brevo's batched webhook: one delivery per admin call, not one per event.
    assert 0 < len(deliveries) - len(signed) < len(generated["newsletter"])


# -- determinism ----------------------------------------------------------------------------------------


def sandbox_state(sandbox_url: str) -> dict:
    """What the generator left in the sandbox, as seen through the admin and vendor APIs."""
    return {
        "calls": httpx.get(f"{sandbox_url}/_sandbox/calls").json(),
        "crm": sorted((c["properties"]["email"], c["properties"].get("hubspot_owner_id") or "")
                      for c in hubspot_contacts(sandbox_url)),
        "brevo": {kind: len(events) for kind, events in brevo_state(sandbox_url)["events"].items()},
        "calendly_canceled": calendly_canceled_events(sandbox_url),
    }


def generate(sandbox_url: str, path: Path, seed: int) -> dict:
    return world.run(CONTACTS, seed, sandbox_url, path, start=START, days=DAYS)


def test_same_seed_same_file_calls_and_sandbox_state(sandbox_url, tmp_path):
    first = generate(sandbox_url, tmp_path / "a.jsonl", SEED)
    first_state = sandbox_state(sandbox_url)
    httpx.post(f"{sandbox_url}/_sandbox/reset").raise_for_status()
    second = generate(sandbox_url, tmp_path / "b.jsonl", SEED)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert first == second
    assert first["sandbox_calls"]["POST /_sandbox/calendly/bookings"] > 0
    assert sandbox_state(sandbox_url) == first_state
    assert first_state["crm"] and first_state["brevo"]["opened"] > 0
    # Without a collector no webhook carries the newsletter engagement: all of it is in Brevo's event log.
    assert first["newsletter_events"] > 0 and sum(first_state["brevo"].values()) == first["brevo_events"]
    assert not (tmp_path / "a.jsonl.partial").exists()


def test_another_seed_gives_another_world(sandbox_url, tmp_path):
    generate(sandbox_url, tmp_path / "a.jsonl", SEED)
    httpx.post(f"{sandbox_url}/_sandbox/reset").raise_for_status()
    generate(sandbox_url, tmp_path / "b.jsonl", SEED + 1)
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "b.jsonl").read_bytes()


def test_window_and_events_follow_the_start_date(sandbox_url, tmp_path):
    summary = world.run(50, SEED, sandbox_url, tmp_path / "f.jsonl", start=date(2024, 3, 1), days=60)
    assert summary["window"] == {"start": "2024-03-01T00:00:00Z", "end": "2024-04-30T00:00:00Z"}
    rows = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert rows and all("2024-03-01" <= r["submitted_at"] < "2024-04-30" for r in rows)


def test_unreachable_sandbox_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sandbox_main(["world", "--contacts", "5", "--sandbox-url", f"http://127.0.0.1:{free_port()}",
                      "--forms-out", str(tmp_path / "f.jsonl")])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("world: ") and "Traceback" not in captured.err and captured.out == ""
    assert list(tmp_path.iterdir()) == []
