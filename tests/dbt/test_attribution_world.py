"""Attribution, revenue and the funnel on the world generator's data: every conversion and every unit of
revenue is credited exactly once under each model, and the UTM parameters a checkout carried reach the
campaign that the revenue is credited to."""

from __future__ import annotations

import pytest

from tests.dbt.conftest import BuiltWorld

MODELS = {"first_touch", "last_touch", "linear", "position_based", "data_driven"}


def test_every_conversion_and_all_revenue_are_credited_once_under_each_model(dbt_world: BuiltWorld) -> None:
    summary = dbt_world.summary
    conversions = dict(dbt_world.query("select conversion_type, count(*) from marts.fct_conversions group by 1"))
    assert conversions["demo_booked"] == summary["bookings"]
    # the conftest adds one purchase of a product the seed does not know
    assert conversions["purchase"] == summary["purchases"] + 1
    assert conversions["lead_created"] == dbt_world.query("select count(distinct email) from marts.fct_touches")[0][0]
    revenue = dict(dbt_world.query("select currency, sum(net_amount) from marts.fct_purchases group by 1"))
    assert revenue and all(amount > 0 for amount in revenue.values())
    totals = dbt_world.query("""
        select attribution_model, coalesce(currency, ''), sum(leads), sum(demos_booked), sum(purchases), sum(revenue)
        from marts.fct_campaign_attribution group by 1, 2""")
    assert {model for model, *_ in totals} == MODELS
    for model in MODELS:
        leads = sum(row[2] for row in totals if row[0] == model)
        demos = sum(row[3] for row in totals if row[0] == model)
        purchases = sum(row[4] for row in totals if row[0] == model)
        assert leads == pytest.approx(conversions["lead_created"]), model
        assert demos == pytest.approx(conversions["demo_booked"]), model
        assert purchases == pytest.approx(conversions["purchase"]), model
        by_currency = {currency: amount for name, currency, *_, amount in totals if name == model and currency}
        assert by_currency == pytest.approx(revenue), model


def test_checkout_utm_parameters_reach_the_campaign_credited_with_the_revenue(dbt_world: BuiltWorld) -> None:
    """The checkout itself is the latest touch before its purchase, so last-touch revenue per source is the
    purchases' revenue per the source their checkout metadata names (or direct)."""
    credited = dict(dbt_world.query("""
        select source, sum(revenue) from marts.fct_campaign_attribution
        where attribution_model = 'last_touch' and revenue <> 0 group by 1"""))
    expected = dict(dbt_world.query(
        "select coalesce(utm_source, 'direct'), sum(net_amount) from marts.fct_purchases group by 1"))
    assert len(expected) > 2
    assert credited == pytest.approx(expected)


def test_the_funnel_counts_each_contact_once(dbt_world: BuiltWorld) -> None:
    leads, demos, customers = dbt_world.query(
        "select sum(leads), sum(demos_booked), sum(customers) from marts.fct_funnel")[0]
    assert leads == dbt_world.query("select count(distinct email) from marts.fct_conversions")[0][0]
    assert demos == dbt_world.query(
        "select count(distinct email) from marts.fct_conversions where conversion_type = 'demo_booked'")[0][0] > 0
    assert 0 < customers <= leads
