"""What the synthetic company is made of: its names, organisations, campaigns, products and links, the
shares that shape it, and the records a block of contacts collects."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

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

