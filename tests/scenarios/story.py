"""The scenario story: a fixed script of lifecycle events for a dozen-odd contacts on an absolute timeline,
replayed through the real pipeline (`lifecycle run --as-of`) at a short list of checkpoints.

Every event enters the systems the way it would in production, before the first run: Calendly and Stripe
events through the sandbox's admin API, delivered as signed webhooks to a live collector; Brevo opens,
clicks and unsubscribes into the sandbox's event log, and those on newsletter campaigns delivered by
Brevo's marketing webhook to the collector; pre-existing CRM contacts seeded into HubSpot; form
submissions through the backfill (`import_forms`), since only a backfill keeps a submission's own time.
The pipeline time-travels (every model reads `occurred_at <= as_of`), so each checkpoint sees exactly the
part of the story that has happened by then.

After each checkpoint the harness records what the destinations show (new transactional emails, HubSpot
properties and notes, Brevo attributes and lists) through the sandbox's admin API, so tests assert on the
destinations' state only, never on warehouse internals.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingestion.backfill import import_forms
from ingestion.collector.app import create_collector_app
from ingestion.landing import LandingZone
from ingestion.webhooks import register_webhooks
from orchestration import cli
from settings import Settings, sandbox_environment
from tests.servers import serve

NINA = "nina.nurture@providers.example"
CARL = "carl.cancel@homecare.example"
RITA = "rita.reschedule@assisted.example"
ROB = "rob.reverse@ymca-north.example"
OLGA = "olga.owner@hospital.example"
CORA = "cora.client@provider.example"
PAULA = "paula.purchase@family.example"
PETE = "pete.pair@family.example"
WENDY = "wendy.webinar@seniorliving.example"
UMA = "uma.unsub@family.example"
REMY = "remy.reengage@family.example"
MIA = "mia.member@family.example"
NED = "ned.nonpay@family.example"
OSCAR = "oscar.other@church.example"
YARA = "yara.ymca@ymca-south.example"
NELL = "nell.newsletter@family.example"
CONTACTS = (NINA, CARL, RITA, ROB, OLGA, CORA, PAULA, PETE, WENDY, UMA, REMY, MIA, NED, OSCAR, YARA, NELL)

WENDY_PHONE = "+1 555-010-2030"

CHECKPOINTS = (
    ("day0", "2026-09-01T12:00:00Z"),
    ("day6", "2026-09-07T12:00:00Z"),
    ("day7", "2026-09-08T12:00:00Z"),
    ("day10", "2026-09-11T12:00:00Z"),
    ("day14", "2026-09-15T12:00:00Z"),
    ("day18", "2026-09-19T12:00:00Z"),
    ("wb003_eve", "2026-10-14T21:30:00Z"),
    ("wb005_eve", "2026-12-10T12:00:00Z"),
    ("wb005_hour", "2026-12-10T18:30:00Z"),
)
"""(name, as_of) of each pipeline run, in order. The webinar seed's `starts_at` is UTC (seeds/_seeds.yml):
WB003 starts 2026-10-15T17:00Z, WB005 2026-12-10T19:00Z. No run falls in WB003's last hour, so its 1 h
reminder could only go out late; one run falls in WB005's."""
NAMES = [name for name, _ in CHECKPOINTS]

MARKETING_TEMPLATES = frozenset({*range(101, 108), 301, 302, 303, 601, 602, 701, 702, 703, 801, 802})
"""Template ids of the marketing sequences of seeds/sequences.csv (nurture, post-purchase, re-engagement,
winback, the YMCA webinar follow-up)."""

OWNED_CRM_PROPERTIES = (
    "email", "firstname", "lastname", "company", "phone", "hs_lead_status", "customer_segment",
    "primary_audience", "form_source", "original_touch_source", "original_touch_campaign",
    "original_touch_at",
    "latest_touch_source", "latest_touch_campaign", "latest_touch_at", "webinar_history", "demo_booked_at",
    "demo_event_name", "customer_status", "engagement_tier",
)
"""docs/field-names.md: what the pipeline writes, plus the fields it must never change (compared too)."""
GUARDED_CRM_PROPERTIES = ("hubspot_owner_id", "hs_analytics_source", "lifecyclestage")

MAX_ATTEMPTS = 3
"""How often a failed checkpoint run is started again (what the schedule would do on its next tick)."""
RUN_BUDGET_SECONDS = 240
"""A generous ceiling for one pipeline run on a busy 2-core machine (they take 30-100 s)."""
STORY_TIMEOUT_SECONDS = RUN_BUDGET_SECONDS * len(CHECKPOINTS)
"""pytest-timeout budget for a test whose fixture plays one story (the project default of 300 s per test
would interrupt the story's runs mid-way)."""


def form(form_id: str, email: str, submitted_at: str, **fields: Any) -> dict[str, Any]:
    return {"form_id": form_id, "email": email, "submitted_at": submitted_at, **fields}


FORMS = (
    form("newsletter", REMY, "2026-05-20T09:00:00Z", first_name="Remy", last_name="Reengage",
         org_type="Individual", consent=True),
    form("newsletter", NELL, "2026-08-15T09:00:00Z", first_name="Nell", last_name="Newsletter",
         org_type="Individual", consent=True),
    form("newsletter", UMA, "2026-08-25T09:00:00Z", first_name="Uma", last_name="Unsub",
         org_type="Individual", consent=True),
    form("contact", ROB, "2026-09-01T08:00:00Z", first_name="Rob", last_name="Reverse",
         organization="YMCA North", org_type="YMCA"),
    form("contact", NINA, "2026-09-01T09:00:00Z", first_name="Nina", last_name="Nurture",
         organization="Sunrise Providers", org_type="Provider Organization", utm_source="google",
         utm_medium="cpc", utm_campaign="fall_demo", consent=True),
    form("contact", CARL, "2026-09-01T10:00:00Z", first_name="Carl", last_name="Cancel",
         organization="Carl Home Care", org_type="Home Care Agency", utm_source="linkedin",
         utm_medium="social", utm_campaign="fall_demo"),
    form("contact", RITA, "2026-09-01T11:00:00Z", first_name="Rita", last_name="Reschedule",
         organization="Maple Assisted Living", org_type="Assisted Living",
         referrer="https://www.bing.com/search?q=home+care+software"),
    form("download", OLGA, "2026-09-02T09:00:00Z", first_name="Olga", last_name="Owner",
         organization="City Hospital", org_type="Hospital", utm_source="linkedin", utm_medium="social",
         utm_campaign="caregiver_guide"),
    form("contact", CORA, "2026-09-02T09:00:00Z", first_name="Cora", last_name="Client",
         organization="Cora Providers", org_type="Provider Organization"),
    form("webinar", WENDY, "2026-09-02T09:00:00Z", first_name="Wendy", last_name="Webinar",
         organization="Oak Senior Living", org_type="Assisted Living", phone=WENDY_PHONE,
         webinar_code="WB003"),
    form("webinar", UMA, "2026-09-02T10:00:00Z", first_name="Uma", org_type="Individual",
         webinar_code="WB003"),
    form("newsletter", OSCAR, "2026-09-03T09:00:00Z", first_name="Oscar", organization="Grace Church",
         org_type="Church"),
    form("webinar", YARA, "2026-09-05T09:00:00Z", first_name="Yara", last_name="Ymca",
         organization="YMCA South", org_type="YMCA", webinar_code="WB003", consent=True),
    form("webinar", WENDY, "2026-09-09T09:00:00Z", first_name="Wendy", org_type="Assisted Living",
         webinar_code="WB003"),
    form("contact", CARL, "2026-09-16T09:00:00Z", first_name="Carl", org_type="Home Care Agency"),
    form("newsletter", OLGA, "2026-09-17T09:00:00Z", first_name="Olga", utm_source="facebook",
         utm_medium="social", utm_campaign="fall_newsletter"),
    form("webinar", WENDY, "2026-09-17T09:00:00Z", first_name="Wendy", org_type="Assisted Living",
         webinar_code="WB005"),
)

CRM_SEEDS = (
    {"properties": {"email": OLGA, "firstname": "Olga", "lastname": "Owner", "hubspot_owner_id": "101",
                    "hs_analytics_source": "OFFLINE", "lifecyclestage": "lead",
                    "original_touch_source": "tradeshow", "original_touch_campaign": "expo_2025",
                    "original_touch_at": "2025-11-05T15:00:00Z"},
     "createdate": "2025-11-05T15:00:00Z"},
    {"properties": {"email": CORA, "firstname": "Cora", "lastname": "Client", "hubspot_owner_id": "102",
                    "hs_analytics_source": "DIRECT_TRAFFIC", "lifecyclestage": "customer"},
     "createdate": "2025-06-01T12:00:00Z"},
)

BREVO_EVENTS = (
    {"email": REMY, "event": "opened", "at": "2026-06-01T09:00:00Z"},
    {"email": UMA, "event": "unsubscribed", "at": "2026-08-28T09:00:00Z"},
    {"email": REMY, "event": "clicked", "at": "2026-09-10T09:00:00Z", "link": "https://example.org/tips"},
    {"email": REMY, "event": "opened", "at": "2026-10-20T09:00:00Z"},
    # Nell reads the newsletter and never opens a lifecycle email: only Brevo's marketing webhook tells.
    {"email": NELL, "event": "opened", "at": "2026-08-19T08:00:00Z", "campaign_id": 41,
     "campaign_name": "August news", "campaign_sent_at": "2026-08-18T15:00:00Z"},
    {"email": NELL, "event": "clicked", "at": "2026-09-02T08:00:00Z", "link": "https://example.org/fall",
     "campaign_id": 42, "campaign_name": "September news", "campaign_sent_at": "2026-09-01T15:00:00Z"},
    {"email": NELL, "event": "unsubscribed", "at": "2026-09-08T09:00:00Z", "campaign_id": 43,
     "campaign_name": "Fall webinars", "campaign_sent_at": "2026-09-08T08:00:00Z"},
)


def purchase(email: str, name: str, product_id: str, product_name: str, amount: int, at: str,
             **utm: str) -> dict[str, Any]:
    return {"email": email, "name": name, "product_id": product_id, "product_name": product_name,
            "amount": amount, "currency": "usd", "created_at": at, **utm}


PURCHASES = {
    "pete-1": purchase(PETE, "Pete Pair", "prod_toolkit", "Family care toolkit", 2900,
                       "2026-08-30T10:00:00Z"),
    "pete-2": purchase(PETE, "Pete Pair", "prod_consult", "1:1 consultation", 9900, "2026-08-31T15:00:00Z"),
    "paula-1": purchase(PAULA, "Paula Purchase", "prod_course_basics", "Caregiving basics course", 4900,
                        "2026-08-31T10:00:00Z", utm_source="facebook"),
    "paula-2": purchase(PAULA, "Paula Purchase", "prod_toolkit", "Family care toolkit", 2900,
                        "2026-09-03T10:00:00Z"),
    "uma-1": purchase(UMA, "Uma Unsub", "prod_toolkit", "Family care toolkit", 2900, "2026-09-03T11:00:00Z"),
    "paula-3": purchase(PAULA, "Paula Purchase", "prod_consult", "1:1 consultation", 9900,
                        "2026-09-08T10:00:00Z"),
    "paula-4": purchase(PAULA, "Paula Purchase", "prod_dementia_course", "Dementia care course", 7900,
                        "2026-09-17T10:00:00Z"),
    "mia-1": purchase(MIA, "Mia Member", "prod_course_basics", "Caregiving basics course", 4900,
                      "2026-09-17T10:00:00Z"),
    "nell-1": purchase(NELL, "Nell Newsletter", "prod_toolkit", "Family care toolkit", 2900,
                       "2026-09-04T10:00:00Z"),
}
REFUNDS = {"paula-2": "2026-09-12T10:00:00Z"}


@dataclass
class Observation:
    """What the destinations showed after one checkpoint."""

    emails: list[dict]
    """Transactional emails that arrived during this checkpoint's run."""
    crm: dict[str, dict]
    """Per contact: ``{"properties": ..., "notes": [...]}``, or absent when HubSpot does not hold it."""
    brevo: dict[str, dict]
    """Per contact: ``{"attributes": ..., "lists": [...]}``, or absent when Brevo does not hold it."""


@dataclass
class History:
    """The whole replay: one observation per checkpoint, plus the ids the sandbox gave the story's objects."""

    observations: dict[str, Observation] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    """Sandbox-generated id (session, invitee uri, subscription) -> the story's stable name for it."""
    attempts: dict[str, int] = field(default_factory=dict)
    """Runs it took per checkpoint (more than one only where a run failed and was started again)."""
    calls: dict[str, int] = field(default_factory=dict)
    """API calls the sandbox received over the whole replay, per ``"service METHOD path"``."""

    def label(self, value: str) -> str:
        """``value`` with every sandbox-generated id replaced by its story name (longest ids first)."""
        for raw in sorted(self.labels, key=len, reverse=True):
            value = value.replace(raw, self.labels[raw])
        return value

    def id_of(self, name: str) -> str:
        return next(raw for raw, label in self.labels.items() if label == name)

    def emails(self, to: str, template_id: int | None = None) -> list[tuple[str, dict]]:
        """(checkpoint, email) of every email to ``to`` (with that template), in arrival order."""
        return [(checkpoint, email) for checkpoint, observation in self.observations.items()
                for email in observation.emails
                if recipient(email) == to and (template_id is None or email["templateId"] == template_id)]

    def arrivals(self, to: str, template_id: int) -> list[str]:
        """The checkpoints at which an email with this template reached ``to`` (one entry per email)."""
        return [checkpoint for checkpoint, _ in self.emails(to, template_id)]

    def crm(self, checkpoint: str, email: str) -> dict:
        return self.observations[checkpoint].crm[email]["properties"]

    def notes(self, checkpoint: str, email: str) -> list[str]:
        return [note["hs_note_body"] for note in self.observations[checkpoint].crm[email]["notes"]]

    def attributes(self, checkpoint: str, email: str) -> dict:
        return self.observations[checkpoint].brevo[email]["attributes"]

    def lists(self, checkpoint: str, email: str) -> list[str]:
        return self.observations[checkpoint].brevo[email]["lists"]

    def all_emails(self) -> list[dict]:
        return [email for observation in self.observations.values() for email in observation.emails]

    def snapshot(self) -> dict[str, Any]:
        """The end state, normalized so that two replays of the story compare equal when they reached the
        same state: owned CRM properties and note bodies, Brevo attributes and lists per contact, and the
        multiset of emails received (to, templateId, params with sandbox ids replaced by story names)."""
        final = self.observations[NAMES[-1]]
        contacts = {}
        for email in CONTACTS:
            crm = final.crm.get(email)
            brevo = final.brevo.get(email)
            contacts[email] = {
                "crm": None if crm is None else {
                    name: crm["properties"].get(name)
                    for name in (*OWNED_CRM_PROPERTIES, *GUARDED_CRM_PROPERTIES)},
                "notes": None if crm is None else sorted(
                    (note["hs_timestamp"], note["hs_note_body"]) for note in crm["notes"]),
                "brevo": None if brevo is None else {
                    "attributes": brevo["attributes"], "lists": sorted(brevo["lists"])},
            }
        emails = Counter(
            (recipient(email), email["templateId"], self.label(json.dumps(email["params"], sort_keys=True)))
            for email in self.all_emails())
        return {"contacts": contacts, "emails": sorted(emails.items())}


def recipient(email: dict) -> str:
    (to,) = email["to"]
    return to["email"]


def message_key(email: dict) -> tuple:
    """What identifies a message (docs/sequences.md#message-keys: contact, sequence, instance, step): the recipient, template,
    sequence and step, and the instance's own params (a merge sequence's growing `purchases` list is
    content, not identity)."""
    params = email["params"]
    instance = {name: value for name, value in params.items()
                if name not in ("sequence", "step", "purchases")}
    return (recipient(email), email["templateId"], params.get("sequence"), params.get("step"),
            json.dumps(instance, sort_keys=True))


class AdminApi:
    """The sandbox's admin API (never fault-injected), as the story drives and reads it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=f"{base_url}/_sandbox", timeout=30.0)

    def post(self, path: str, body: Any) -> Any:
        response = self.http.post(path, json=body)
        assert response.is_success, (path, response.status_code, response.text)
        return response.json()

    def get(self, path: str) -> Any | None:
        response = self.http.get(path)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()


def stage_events(sandbox: AdminApi, history: History) -> None:
    """Every non-form event of the story into the sandbox (webhooks fire at once, to the collector)."""
    sandbox.post("/hubspot/contacts", list(CRM_SEEDS))
    for event in BREVO_EVENTS:
        sandbox.post("/brevo/events", event)

    def book(label: str, email: str, name: str, created_at: str, start: str, end: str, **utm: str) -> str:
        answer = sandbox.post("/calendly/bookings", {
            "email": email, "name": name, "event_name": "Product demo", "start_time": start, "end_time": end,
            "created_at": created_at, **utm})
        history.labels[answer["invitee_uri"]] = f"invitee:{label}"
        return answer["invitee_uri"]

    def cancel(uri: str, at: str, new_label: str | None = None, **details: Any) -> None:
        answer = sandbox.post("/calendly/cancellations", {"invitee_uri": uri, "canceled_at": at, **details})
        if new_label:
            history.labels[answer["new_invitee_uri"]] = f"invitee:{new_label}"

    rita = book("rita-1", RITA, "Rita Reschedule", "2026-09-03T09:00:00Z", "2026-09-20T15:00:00Z",
                "2026-09-20T15:30:00Z")
    rob = book("rob-1", ROB, "Rob Reverse", "2026-09-04T09:00:00Z", "2026-09-21T16:00:00Z",
               "2026-09-21T16:30:00Z")
    cancel(rita, "2026-09-09T09:00:00Z", "rita-2",
           reschedule_to={"start_time": "2026-09-24T15:00:00Z", "end_time": "2026-09-24T15:30:00Z"})
    cancel(rob, "2026-09-10T09:00:00Z", "rob-2", reverse_order=True,
           reschedule_to={"start_time": "2026-09-23T16:00:00Z", "end_time": "2026-09-23T16:30:00Z"})
    carl = book("carl-1", CARL, "Carl Cancel", "2026-09-10T09:00:00Z", "2026-09-25T15:00:00Z",
                "2026-09-25T15:30:00Z")
    cancel(carl, "2026-09-12T09:00:00Z")
    book("nina-1", NINA, "Nina Nurture", "2026-09-15T10:00:00Z", "2026-09-22T15:00:00Z",
         "2026-09-22T15:30:00Z", utm_source="newsletter", utm_medium="email", utm_campaign="demo_push")

    subscriptions = {}
    for label, email, started in (("mia", MIA, "2026-08-01T10:00:00Z"), ("ned", NED, "2026-08-06T10:00:00Z")):
        answer = sandbox.post("/stripe/subscriptions", {"email": email, "product_id": "prod_membership",
                                                        "started_at": started})
        subscriptions[label] = answer["id"]
        history.labels[answer["id"]] = f"subscription:{label}"
    sandbox.post(f"/stripe/subscriptions/{subscriptions['mia']}/renew", {"at": "2026-08-31T10:00:00Z"})
    sandbox.post(f"/stripe/subscriptions/{subscriptions['ned']}/renew", {"at": "2026-09-05T10:00:00Z",
                                                                          "paid": False})
    sandbox.post(f"/stripe/subscriptions/{subscriptions['mia']}/cancel", {"at": "2026-09-09T10:00:00Z"})
    for label, body in sorted(PURCHASES.items(), key=lambda item: item[1]["created_at"]):
        answer = sandbox.post("/stripe/purchases", body)
        history.labels[answer["session_id"]] = f"session:{label}"
    for label, at in REFUNDS.items():
        sandbox.post("/stripe/refunds", {"session_id": history.id_of(f"session:{label}"), "created_at": at})


def stage_forms(home: Path, landing: LandingZone) -> None:
    path = home / "story-forms.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in FORMS))
    report = import_forms(path, landing)
    assert (report.landed, report.rejected) == (len(FORMS), []), report.summary()


def observe(sandbox: AdminApi, seen: int) -> tuple[Observation, int]:
    """The destinations' state now, and the emails that arrived since the first ``seen``."""
    emails = sandbox.get("/brevo/emails")
    crm, brevo = {}, {}
    for email in CONTACTS:
        if (contact := sandbox.get(f"/hubspot/contacts/{email}")) is not None:
            crm[email] = {"properties": contact["properties"], "notes": contact["notes"]}
        if (contact := sandbox.get(f"/brevo/contacts/{email}")) is not None:
            brevo[email] = {"attributes": contact["attributes"], "lists": contact["lists"]}
    return Observation(emails[seen:], crm, brevo), len(emails)


def play_story(sandbox_url: str, home: Path, faults: dict[str, Any] | None = None) -> History:
    """Reset the sandbox, stage the story, run the pipeline at every checkpoint and record what changed.

    With ``faults`` (the body of ``POST /_sandbox/faults`` minus ``service``), HubSpot and Brevo inject them
    into every API call of the runs; the admin API the harness uses is never faulted. A run that fails is
    started again at the same as_of, up to ``MAX_ATTEMPTS`` runs per checkpoint.
    """
    sandbox = AdminApi(sandbox_url)
    sandbox.post("/reset", {})
    sandbox.post("/limits", {"off": True})
    history = History()
    env = {**sandbox_environment(sandbox_url, home), "DAGSTER_HOME": str(home / "dagster")}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = Settings.from_env()
        collector = create_collector_app(LandingZone(settings.landing_dir, writer="collector"),
                                         calendly_signing_key=env["CALENDLY_WEBHOOK_SIGNING_KEY"],
                                         stripe_webhook_secret=env["STRIPE_WEBHOOK_SECRET"],
                                         brevo_webhook_token=env["BREVO_WEBHOOK_TOKEN"])
        with serve(collector) as collector_url:
            register_webhooks(collector_url, calendly_base_url=env["CALENDLY_BASE_URL"],
                              calendly_token=env["CALENDLY_TOKEN"],
                              calendly_signing_key=env["CALENDLY_WEBHOOK_SIGNING_KEY"],
                              stripe_base_url=env["STRIPE_BASE_URL"], stripe_api_key=env["STRIPE_API_KEY"],
                              brevo_base_url=env["BREVO_BASE_URL"], brevo_api_key=env["BREVO_API_KEY"],
                              brevo_webhook_token=env["BREVO_WEBHOOK_TOKEN"])
            stage_events(sandbox, history)
            stage_forms(home, LandingZone(settings.landing_dir, writer="import-story"))
            sandbox.post("/webhooks/flush", {})
            deliveries = sandbox.get("/webhooks")
            assert deliveries and all(d["status"] == "delivered" for d in deliveries), deliveries
            if faults:
                for service in ("hubspot", "brevo"):
                    sandbox.post("/faults", {"service": service, **faults})
            seen = 0
            for name, as_of in CHECKPOINTS:
                # The dbt data tests run at the last checkpoint only (each day's run is a third faster; the
                # dbt suite checks them on its own world too).
                tests = [] if name == NAMES[-1] else ["--skip-dbt-tests"]
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    history.attempts[name] = attempt
                    if cli.main(["run", "--select", "all", "--as-of", as_of, *tests]) == 0:
                        break
                else:
                    raise AssertionError(f"checkpoint {name} ({as_of}) failed {MAX_ATTEMPTS} runs in a row")
                history.observations[name], seen = observe(sandbox, seen)
            if faults:
                sandbox.post("/faults", {})
            history.calls = sandbox.get("/calls")
    return history
