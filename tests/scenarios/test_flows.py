"""docs/README.md flow by flow, on the recorded replay of the story (tests/scenarios/story.py): each test reads
what HubSpot and Brevo showed after each checkpoint run, and which transactional emails arrived in which
run. Checkpoints: day0 = 2026-09-01 12:00Z, day6, day7, day10, day14, day18 (days after 09-01, at noon UTC),
wb003_eve = 2026-10-14 21:30Z, wb005_eve = 2026-12-10 12:00Z, wb005_hour = 2026-12-10 18:30Z."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.scenarios.story import (
    CARL,
    CONTACTS,
    CORA,
    MARKETING_TEMPLATES,
    MIA,
    NAMES,
    NED,
    NELL,
    NINA,
    OLGA,
    OSCAR,
    PAULA,
    PETE,
    REMY,
    RITA,
    ROB,
    STORY_TIMEOUT_SECONDS,
    UMA,
    WENDY,
    WENDY_PHONE,
    YARA,
    History,
    message_key,
    recipient,
)

pytestmark = pytest.mark.timeout(STORY_TIMEOUT_SECONDS)

EXPECTED_EMAILS = {
    "day0": [(NINA, 101), (CARL, 101), (RITA, 101), (ROB, 101), (PAULA, 301), (PETE, 301), (REMY, 601)],
    "day6": [(PAULA, 302), (PETE, 302), (WENDY, 401), (UMA, 401), (RITA, 201), (ROB, 201), (YARA, 401),
             (NELL, 301)],
    "day7": [(NINA, 102), (CARL, 102), (YARA, 801)],
    "day10": [(RITA, 201), (ROB, 201), (CARL, 201), (MIA, 701)],
    "day14": [(NINA, 201), (PAULA, 303), (PETE, 303)],
    "day18": [(CARL, 103), (NED, 701), (MIA, 301), (WENDY, 401)],
    "wb003_eve": [(WENDY, 501), (UMA, 501), (CARL, 105), (NED, 702), (MIA, 303), (YARA, 501), (YARA, 802)],
    "wb005_eve": [(WENDY, 501), (NED, 703), (CARL, 107)],
    "wb005_hour": [(WENDY, 502)],
}
"""Every email of the story, per checkpoint: (to, templateId). Derived by hand from docs/README.md and the
sequences file; the comments of each flow's test say why each one is due when it is."""

SEQUENCE_OF_TEMPLATE = {
    **{100 + step: ("demo_nurture", step) for step in range(1, 8)},
    201: ("demo_confirmation", 1),
    301: ("post_purchase", 1), 302: ("post_purchase", 2), 303: ("post_purchase", 3),
    401: ("webinar_confirmation", 1), 501: ("webinar_reminder", 1), 502: ("webinar_reminder", 2),
    601: ("reengagement", 1), 602: ("reengagement", 2), 701: ("winback", 1), 702: ("winback", 2),
    703: ("winback", 3), 801: ("ymca_webinar_followup", 1), 802: ("ymca_webinar_followup", 2),
}


def instant(value: str) -> datetime:
    """A HubSpot datetime property as stored: epoch milliseconds or ISO 8601."""
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    return datetime.fromisoformat(value)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def sessions(history: History, email: dict) -> list[str]:
    return [history.label(purchase["session_id"]) for purchase in email["params"]["purchases"]]


def after(checkpoint: str) -> list[str]:
    return NAMES[NAMES.index(checkpoint):]


# -- the whole story -----------------------------------------------------------------------------------------


def test_the_story_sends_exactly_these_emails_at_these_checkpoints(story: History) -> None:
    got = {name: sorted((recipient(e), e["templateId"]) for e in story.observations[name].emails)
           for name in NAMES}
    assert got == {name: sorted(expected) for name, expected in EXPECTED_EMAILS.items()}


def test_every_message_key_arrives_at_most_once(story: History) -> None:
    keys = Counter(message_key(email) for email in story.all_emails())
    assert keys and {key: n for key, n in keys.items() if n > 1} == {}


def test_every_send_carries_its_sequence_and_step(story: History) -> None:
    for email in story.all_emails():
        params = email["params"]
        assert (params["sequence"], params["step"]) == SEQUENCE_OF_TEMPLATE[email["templateId"]]
        assert email["params"]["sequence"] in email["tags"]
        assert recipient(email) in CONTACTS


def test_both_systems_hold_the_same_contacts(story: History) -> None:
    final = story.observations[NAMES[-1]]
    assert set(final.crm) == set(final.brevo) == set(CONTACTS)


# -- B2B lead and demo nurture (docs/demos.md) ---------------------------------------------------------------


def test_b2b_lead_reaches_both_systems_tagged_with_segment_audience_form_and_touch(story: History) -> None:
    crm = story.crm("day0", NINA)
    assert {name: crm.get(name) for name in (
        "firstname", "lastname", "company", "customer_segment", "primary_audience", "form_source",
        "original_touch_source", "original_touch_campaign", "latest_touch_source", "latest_touch_campaign",
    )} == {
        "firstname": "Nina", "lastname": "Nurture", "company": "Sunrise Providers", "customer_segment": "B2B",
        "primary_audience": "Providers", "form_source": "contact", "original_touch_source": "google",
        "original_touch_campaign": "fall_demo", "latest_touch_source": "google",
        "latest_touch_campaign": "fall_demo",
    }
    assert instant(crm["original_touch_at"]) == instant(crm["latest_touch_at"]) == at("2026-09-01T09:00:00Z")
    brevo = story.attributes("day0", NINA)
    assert {name: brevo.get(name) for name in (
        "FIRSTNAME", "SEGMENT", "PRIMARY_AUDIENCE", "FORM_SOURCE", "ORIGINAL_SOURCE", "LATEST_SOURCE",
        "IS_CLIENT", "DEMO_BOOKED",
    )} == {
        "FIRSTNAME": "Nina", "SEGMENT": "B2B", "PRIMARY_AUDIENCE": "Providers", "FORM_SOURCE": "contact",
        "ORIGINAL_SOURCE": "google", "LATEST_SOURCE": "google", "IS_CLIENT": False, "DEMO_BOOKED": False,
    }
    assert "Demo nurture" in story.lists("day0", NINA)


def test_touch_source_falls_back_to_the_referrer_then_direct(story: History) -> None:
    assert story.crm("day0", RITA)["original_touch_source"] == "bing"
    assert story.crm("day0", ROB)["original_touch_source"] == "direct"
    assert story.attributes("day0", RITA)["ORIGINAL_SOURCE"] == "bing"


def test_organization_types_map_to_audiences_and_unknown_ones_to_other(story: History) -> None:
    audiences = {email: story.crm("day6", email)["primary_audience"]
                 for email in (CARL, RITA, ROB, OLGA, OSCAR)}
    assert audiences == {CARL: "Providers", RITA: "Senior Living", ROB: "YMCA",
                         OLGA: "Health Systems", OSCAR: "Other"}
    assert story.attributes("day6", OSCAR)["PRIMARY_AUDIENCE"] == "Other"


def test_nurture_steps_arrive_on_their_days(story: History) -> None:
    # entry 09-01 09:00/10:00: step 1 at once, nothing on day 6, step 2 on day 7
    for email in (NINA, CARL):
        assert story.arrivals(email, 101) == ["day0"]
        assert story.arrivals(email, 102) == ["day7"]
    (_, first), = story.emails(NINA, 101)
    assert first["params"]["first_name"] == "Nina" and first["params"]["segment"] == "B2B"


def test_a_booking_stops_the_nurture_even_with_a_step_due_in_the_same_run(story: History) -> None:
    # step 3 was due 09-15 09:00, the booking came 09-15 10:00, the run at 12:00 saw both
    assert story.arrivals(NINA, 201) == ["day14"]
    nurture_after_booking = [(checkpoint, email["templateId"]) for checkpoint, email in story.emails(NINA)
                             if email["templateId"] in range(103, 108)]
    assert nurture_after_booking == []
    assert "Demo nurture" not in story.lists("day14", NINA)
    crm = story.crm("day14", NINA)
    assert crm["hs_lead_status"] == "DEMO_SCHEDULED"
    assert instant(crm["demo_booked_at"]) == at("2026-09-22T15:00:00Z")
    assert crm["demo_event_name"] == "Product demo"
    # the booking's tracking is a touch: the latest touch moves, the original stays
    assert (crm["latest_touch_source"], crm["latest_touch_campaign"]) == ("newsletter", "demo_push")
    assert crm["original_touch_source"] == "google"
    brevo = story.attributes("day14", NINA)
    assert (brevo["DEMO_BOOKED"], brevo["DEMO_DATE"], brevo["DEMO_EVENT_NAME"]) == (
        True, "2026-09-22", "Product demo")
    assert story.notes("day14", NINA) == [
        ("Demo booked via Calendly: Product demo on 2026-09-22 15:00:00 UTC. "
        "Tracking: utm_source=newsletter, utm_medium=email, utm_campaign=demo_push.")]


def test_a_booked_demo_stays_booked_after_it_took_place(story: History) -> None:
    # the demo was 09-22: the contact left the demo flow, the record still says it was booked
    assert story.attributes(NAMES[-1], NINA)["DEMO_BOOKED"] is True
    assert story.notes(NAMES[-1], NINA) == story.notes("day14", NINA)


def test_a_client_never_enters_the_nurture_and_is_flagged_in_brevo(story: History) -> None:
    assert story.emails(CORA) == []
    assert story.attributes("day6", CORA)["IS_CLIENT"] is True
    assert "Demo nurture" not in story.lists("day6", CORA)
    assert story.attributes("day6", NINA)["IS_CLIENT"] is False


# -- demo booking, reschedule, cancellation (docs/demos.md) --------------------------------------------------


@pytest.mark.parametrize(("email", "label", "old_start", "new_start"), [
    (RITA, "rita", "2026-09-20T15:00:00Z", "2026-09-24T15:00:00Z"),
    (ROB, "rob", "2026-09-21T16:00:00Z", "2026-09-23T16:00:00Z"),
], ids=["canceled-webhook-first", "created-webhook-first"])
def test_reschedule_moves_the_demo_and_keeps_the_nurture_stopped(
        story: History, email: str, label: str, old_start: str, new_start: str) -> None:
    assert story.arrivals(email, 101) == ["day0"]
    assert [checkpoint for checkpoint, e in story.emails(email) if e["templateId"] in range(102, 108)] == []

    confirmations = story.emails(email, 201)
    assert [checkpoint for checkpoint, _ in confirmations] == ["day6", "day10"]
    first, second = (e["params"] for _, e in confirmations)
    assert (story.label(first["invitee_uri"]), first["start_at"]) == (f"invitee:{label}-1", old_start)
    assert (story.label(second["invitee_uri"]), second["start_at"]) == (f"invitee:{label}-2", new_start)

    assert instant(story.crm("day6", email)["demo_booked_at"]) == at(old_start)
    assert instant(story.crm("day10", email)["demo_booked_at"]) == at(new_start)
    assert story.attributes("day10", email)["DEMO_DATE"] == new_start[:10]
    for checkpoint in after("day6"):
        assert story.crm(checkpoint, email)["hs_lead_status"] == "DEMO_SCHEDULED", checkpoint
        assert story.attributes(checkpoint, email)["DEMO_BOOKED"] is True, checkpoint
        assert not any("cancel" in note.lower() for note in story.notes(checkpoint, email)), checkpoint
    old, new = (f"{moment[:10]} {moment[11:19]} UTC" for moment in (old_start, new_start))
    assert story.notes(NAMES[-1], email) == [
        f"Demo booked via Calendly: Product demo on {old}. Tracking: none.",
        f"Demo rescheduled from {old} to {new} via Calendly: Product demo. Tracking: none.",
    ]


def test_plain_cancellation_reopens_the_lead_and_resumes_the_nurture_7_days_later(story: History) -> None:
    # booked 09-10, canceled 09-12 09:00: step 3 (due 09-15 by entry) becomes due 09-19 09:00
    assert story.arrivals(CARL, 201) == ["day10"]
    assert story.crm("day10", CARL)["hs_lead_status"] == "DEMO_SCHEDULED"
    assert story.attributes("day10", CARL)["DEMO_BOOKED"] is True
    assert "Demo nurture" not in story.lists("day10", CARL)

    assert story.crm("day14", CARL)["hs_lead_status"] == "OPEN"
    assert story.attributes("day14", CARL)["DEMO_BOOKED"] is False
    assert story.notes("day14", CARL) == [
        "Demo booked via Calendly: Product demo on 2026-09-25 15:00:00 UTC. Tracking: none.",
        "Demo canceled via Calendly: Product demo on 2026-09-25 15:00:00 UTC. Tracking: none.",
    ]
    assert story.notes(NAMES[-1], CARL) == story.notes("day14", CARL)

    assert story.arrivals(CARL, 103) == ["day18"]
    assert "Demo nurture" in story.lists("day18", CARL)
    # later steps keep their spacing from the resumed step 3: 4 on 09-26 and 5 on 10-03 are both due by
    # 10-14 (only the latest is sent), 6 on 10-18 and 7 on 11-02 both by 12-10
    assert [story.arrivals(CARL, template) for template in (104, 105, 106, 107)] == [
        [], ["wb003_eve"], [], ["wb005_eve"]]


def test_a_repeated_contact_form_does_not_restart_the_nurture(story: History) -> None:
    # Carl filled the contact form again on 09-16, while in the nurture
    assert story.arrivals(CARL, 101) == ["day0"]
    assert instant(story.crm("day18", CARL)["latest_touch_at"]) == at("2026-09-16T09:00:00Z")


# -- attribution is never overwritten (docs/contacts-and-touches.md) -----------------------------------------


def test_preexisting_crm_contact_keeps_owner_and_original_source_while_latest_touch_moves(
        story: History) -> None:
    for checkpoint in NAMES:
        crm = story.crm(checkpoint, OLGA)
        assert (crm["hubspot_owner_id"], crm["hs_analytics_source"], crm["lifecyclestage"]) == (
            "101", "OFFLINE", "lead"), checkpoint
        assert (crm["original_touch_source"], crm["original_touch_campaign"]) == ("tradeshow", "expo_2025")
        assert instant(crm["original_touch_at"]) == at("2025-11-05T15:00:00Z")
    early = story.crm("day6", OLGA)
    assert (early["latest_touch_source"], early["latest_touch_campaign"]) == ("linkedin", "caregiver_guide")
    final = story.crm(NAMES[-1], OLGA)
    assert (final["latest_touch_source"], final["latest_touch_campaign"]) == ("facebook", "fall_newsletter")
    assert instant(final["latest_touch_at"]) == at("2026-09-17T09:00:00Z")
    attributes = story.attributes(NAMES[-1], OLGA)
    assert (attributes["ORIGINAL_SOURCE"], attributes["LATEST_SOURCE"]) == ("tradeshow", "facebook")
    assert story.crm(NAMES[-1], CORA)["hubspot_owner_id"] == "102"
    assert story.crm(NAMES[-1], CORA)["lifecyclestage"] == "customer"


# -- B2C post-purchase (docs/purchases.md) -------------------------------------------------------------------


def test_purchases_on_day_0_and_day_3_send_one_day_0_email_and_the_day_5_email_lists_both(
        story: History) -> None:
    (checkpoint, day0), = story.emails(PAULA, 301)
    assert (checkpoint, sessions(story, day0)) == ("day0", ["session:paula-1"])
    (checkpoint, day5), = story.emails(PAULA, 302)
    assert (checkpoint, sessions(story, day5)) == ("day6", ["session:paula-1", "session:paula-2"])
    assert day5["params"]["purchases"][1]["product_names"] == "Family care toolkit"


def test_the_day_15_email_lists_later_purchases_and_leaves_out_the_refunded_one(story: History) -> None:
    # paula-3 was bought on day 8, paula-2 refunded on day 12
    (checkpoint, day15), = story.emails(PAULA, 303)
    assert (checkpoint, sessions(story, day15)) == ("day14", ["session:paula-1", "session:paula-3"])


def test_a_purchase_after_day_15_does_not_retrigger_the_sequence(story: History) -> None:
    # paula-4 on 09-17: the contact is tagged from it, but no post-purchase email follows
    assert [e["templateId"] for _, e in story.emails(PAULA)] == [301, 302, 303]
    assert story.crm(NAMES[-1], PAULA)["primary_audience"] == "Dementia Caregivers"


def test_purchases_before_the_first_run_share_one_day_0_email(story: History) -> None:
    (checkpoint, day0), = story.emails(PETE, 301)
    assert (checkpoint, sessions(story, day0)) == ("day0", ["session:pete-1", "session:pete-2"])


def test_purchasers_are_tagged_b2c_and_listed_as_customers(story: History) -> None:
    for email in (PAULA, PETE):
        assert story.crm("day0", email)["customer_segment"] == "B2C"
        assert story.attributes("day0", email)["SEGMENT"] == "B2C"
        assert story.attributes("day0", email)["PRIMARY_AUDIENCE"] == "Family Caregivers"
        assert "B2C customers" in story.lists("day0", email)


# -- webinars (docs/webinars.md) -----------------------------------------------------------------------------


def test_webinar_confirmation_carries_the_webinar_and_its_three_links(story: History) -> None:
    (checkpoint, email), = [(c, e) for c, e in story.emails(WENDY, 401)
                            if e["params"]["webinar_code"] == "WB003"]
    assert checkpoint == "day6"
    params = email["params"]
    assert (params["webinar_title"], params["starts_at"], params["zoom_url"]) == (
        "Building a home care team", "2026-10-15T17:00:00Z", "https://zoom.us/j/81234560003")

    calendar = urlsplit(params["calendar_url"])
    assert (calendar.scheme, calendar.netloc) == ("https", "www.addevent.com")
    query = {name: values for name, values in parse_qs(calendar.query).items()}
    # the seed's starts_at is UTC; the invitation shows it in the webinar's time zone (EDT, UTC-4)
    assert query == {"title": ["Building a home care team"], "start": ["10/15/2026 13:00"],
                     "end": ["10/15/2026 13:45"], "timezone": ["America/New_York"],
                     "location": ["https://zoom.us/j/81234560003"],
                     "description": ["Join on Zoom: https://zoom.us/j/81234560003"]}

    survey = params["survey_url"]
    base = "https://forms.office.com/Pages/ResponsePage.aspx?id=LcWB003survey&"
    assert survey.startswith(base)
    assert parse_qs(urlsplit(survey).query) == {
        "id": ["LcWB003survey"], "email": [WENDY], "phone": [WENDY_PHONE]}
    prefill = survey[len(base):]
    assert "%40" in prefill and not {"@", " ", "+"} & set(prefill)


def test_registration_joins_the_webinar_list_and_builds_the_history_in_both_systems(story: History) -> None:
    assert "Webinar WB003" in story.lists("day6", WENDY)
    assert "Webinar WB005" not in story.lists("day6", WENDY)
    assert story.crm("day6", WENDY)["webinar_history"] == "WB003"
    final = NAMES[-1]
    assert {"Webinar WB003", "Webinar WB005"} <= set(story.lists(final, WENDY))
    assert story.crm(final, WENDY)["webinar_history"] == "WB003, WB005"
    assert story.attributes(final, WENDY)["WEBINAR_HISTORY"] == "WB003, WB005"
    assert story.crm("day6", WENDY)["customer_segment"] == "B2B"
    assert story.attributes("day6", WENDY)["PRIMARY_AUDIENCE"] == "Senior Living"


def test_registering_twice_for_a_webinar_sends_no_second_confirmation(story: History) -> None:
    # Wendy registered for WB003 on 09-02 and again on 09-09
    codes = [(checkpoint, email["params"]["webinar_code"]) for checkpoint, email in story.emails(WENDY, 401)]
    assert codes == [("day6", "WB003"), ("day18", "WB005")]
    assert story.crm("day10", WENDY)["webinar_history"] == "WB003"


def test_reminders_go_out_24_h_and_1_h_before_and_never_late(story: History) -> None:
    def reminders(email: str, template_id: int) -> list[tuple[str, str]]:
        return [(checkpoint, e["params"]["webinar_code"])
                for checkpoint, e in story.emails(email, template_id)]

    # WB003 starts 10-15 17:00Z: 24 h reminder due 10-14 17:00Z; no run in its last hour, so the 1 h one
    # could only have gone late. WB005 starts 12-10 19:00Z: runs at 12:00Z and 18:30Z catch both.
    assert reminders(WENDY, 501) == [("wb003_eve", "WB003"), ("wb005_eve", "WB005")]
    assert reminders(WENDY, 502) == [("wb005_hour", "WB005")]
    assert reminders(UMA, 501) == [("wb003_eve", "WB003")]
    assert reminders(UMA, 502) == []


def test_a_ymca_registrant_gets_the_targeted_follow_up_and_other_registrants_never_do(story: History) -> None:
    # ymca_webinar_followup (seeds/sequences.csv: entry_audiences YMCA). Yara registered for WB003 on 09-05
    # 09:00 from a YMCA: step 1 is due 3 days later (09-08 09:00: not yet at day6's run on 09-07, sent at
    # day7's), step 2 30 days later (10-05 09:00: the next run is wb003_eve's).
    assert story.crm("day6", YARA)["primary_audience"] == "YMCA"
    assert story.arrivals(YARA, 801) == ["day7"]
    assert story.arrivals(YARA, 802) == ["wb003_eve"]
    for _, email in story.emails(YARA, 801) + story.emails(YARA, 802):
        assert (email["params"]["webinar_code"], email["params"]["webinar_title"]) == (
            "WB003", "Building a home care team")
    # the confirmation and reminders are everyone's, as for any registrant
    assert story.arrivals(YARA, 401) == ["day6"]
    assert story.arrivals(YARA, 501) == ["wb003_eve"]
    # Wendy registered for the same webinar tagged Senior Living; nothing suppresses her marketing email (no
    # unsubscribe, bounce, complaint or refused consent), only the filter keeps the follow-up from her. Rob
    # is tagged YMCA but registered for no webinar.
    assert story.crm("day6", WENDY)["primary_audience"] == "Senior Living"
    followers = {recipient(email) for email in story.all_emails() if email["templateId"] in (801, 802)}
    assert followers == {YARA}


# -- engagement and re-engagement (docs/engagement.md) -------------------------------------------------------


def test_a_quiet_contact_gets_the_reengagement_sequence_and_engaging_again_takes_them_out(
        story: History) -> None:
    # opened 06-01, quiet from 08-30; clicked 09-10, opened 10-20
    assert story.arrivals(REMY, 601) == ["day0"]
    assert story.crm("day0", REMY)["engagement_tier"] == "quiet"
    assert story.attributes("day0", REMY)["ENGAGEMENT_TIER"] == "quiet"
    assert "Re-engagement" in story.lists("day7", REMY)
    assert "Re-engagement" not in story.lists("day10", REMY)
    assert story.attributes("day10", REMY)["ENGAGEMENT_TIER"] == "most_engaged"
    assert story.crm(NAMES[-1], REMY)["engagement_tier"] == "engaged"
    assert story.arrivals(REMY, 602) == []


# -- renewals, churn and winback (docs/churn.md) -------------------------------------------------------------


def test_a_deleted_subscription_churns_and_a_new_purchase_reactivates_and_stops_the_winback(
        story: History) -> None:
    # subscribed 08-01, renewed 08-31, deleted 09-09, bought again 09-17
    assert story.crm("day7", MIA)["customer_status"] == "active"
    assert story.crm("day10", MIA)["customer_status"] == "churned"
    assert story.attributes("day10", MIA)["CUSTOMER_STATUS"] == "churned"
    assert "Churned" in story.lists("day10", MIA)
    (checkpoint, winback), = story.emails(MIA, 701)
    assert checkpoint == "day10" and winback["params"]["reason"] == "subscription_deleted"
    assert story.crm("day18", MIA)["customer_status"] == "active"
    assert story.attributes("day18", MIA)["CUSTOMER_STATUS"] == "active"
    assert "Churned" not in story.lists("day18", MIA)
    # winback step 2 would have been due 09-23
    assert story.arrivals(MIA, 702) == story.arrivals(MIA, 703) == []


def test_a_renewal_unpaid_14_days_churns_and_the_winback_runs_day_0_14_45(story: History) -> None:
    # renewal attempted and failed 09-05: churned at 09-19 10:00
    assert story.crm("day14", NED)["customer_status"] == "active"
    assert story.crm("day18", NED)["customer_status"] == "churned"
    assert story.attributes("day18", NED)["CUSTOMER_STATUS"] == "churned"
    assert "Churned" in story.lists("day18", NED)
    assert [(checkpoint, e["templateId"]) for checkpoint, e in story.emails(NED)] == [
        ("day18", 701), ("wb003_eve", 702), ("wb005_eve", 703)]


# -- suppression (docs/engagement.md) ------------------------------------------------------------------------


def test_an_unsubscribed_contact_gets_transactional_email_but_no_marketing(story: History) -> None:
    # unsubscribed 08-28, then registered for WB003 and bought on 09-03 (a post-purchase sequence was due)
    received = [(checkpoint, email["templateId"]) for checkpoint, email in story.emails(UMA)]
    assert received == [("day6", 401), ("wb003_eve", 501)]
    assert not {template for _, template in received} & MARKETING_TEMPLATES
    assert story.crm("day6", UMA)["customer_status"] == "active"
    assert "B2C customers" in story.lists("day6", UMA)


def test_a_newsletter_reader_is_engaged_and_a_newsletter_unsubscribe_stops_her_lifecycle_emails(
        story: History) -> None:
    # Only newsletter engagement (Brevo's marketing webhook): opened 08-19, clicked 09-02; bought 09-04,
    # unsubscribed from a newsletter 09-08 (post-purchase day 5 was due 09-09, day 15 09-19); no engagement
    # for 90 days from 12-01 (a re-engagement would have been due then).
    assert story.crm("day0", NELL)["engagement_tier"] == "engaged"
    assert story.crm("day6", NELL)["engagement_tier"] == "most_engaged"
    assert story.attributes("day6", NELL)["ENGAGEMENT_TIER"] == "most_engaged"
    assert story.crm("wb003_eve", NELL)["engagement_tier"] == "engaged"
    assert story.crm(NAMES[-1], NELL)["engagement_tier"] == "quiet"
    assert [(checkpoint, email["templateId"]) for checkpoint, email in story.emails(NELL)] == [("day6", 301)]
