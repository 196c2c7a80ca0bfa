"""How the whole pipeline reads in the Dagster UI: every asset says what it is built with (kinds), names that
tell the systems apart in the graph (which shows a key's last part), dbt descriptions without the model's SQL,
and activation previews that a person can read and that show no one's address."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import dagster as dg
import pytest

from activations.engine import Change, SyncResult
from activations.sends import Message, SendResult
from orchestration.defs.activate import materialization_metadata, preview_markdown, send_preview_rows

VENDORS = {"hubspot", "brevo", "calendly", "stripe"}
EMAIL = "jane.doe@example.com"
MASKED = "ja***@example.com"
MOMENT = datetime(2026, 9, 1, 9, 30, tzinfo=UTC)
EPOCH_MS = str(int(MOMENT.timestamp() * 1000))
STARTED = MOMENT.replace(tzinfo=None)
"""The engines keep naive UTC times."""


@pytest.fixture(scope="module")
def graph() -> dg.AssetGraph:
    from orchestration.definitions import defs

    return defs.resolve_asset_graph()


def test_every_asset_has_kinds(graph: dg.AssetGraph) -> None:
    kinds = {key.to_user_string(): graph.get(key).kinds for key in graph.get_all_asset_keys()}
    assert all(kinds.values()), [key for key, kind in kinds.items() if not kind]
    assert all({"dlt", "duckdb"} <= kind for key, kind in kinds.items() if key.startswith("raw_"))
    assert all({"dbt", "duckdb"} <= kind for key, kind in kinds.items()
               if graph.get(dg.AssetKey.from_user_string(key)).group_name == "transform")


def test_names_tell_the_systems_apart_in_the_graph(graph: dg.AssetGraph) -> None:
    """The rule: a last key component may be shared only by raw tables, whose first component
    ``raw_<source>`` names the system they come from (dlt -> dbt lineage needs their ``[dataset, table]``
    keys); every other asset's last component is unique in the graph, and an asset that writes to a vendor
    (a vendor among its kinds, outside ingestion) starts its name with that vendor."""
    by_name: dict[str, list[dg.AssetKey]] = defaultdict(list)
    for key in graph.get_all_asset_keys():
        by_name[key.path[-1]].append(key)
    shared = {name: keys for name, keys in by_name.items() if len(keys) > 1}
    assert shared, "the raw tables share names (contacts, webhook_events, rejected_lines)"
    for name, keys in shared.items():
        assert all(key.path[0].startswith("raw_") and len(key.path) == 2 for key in keys), (name, keys)
        assert len({key.path[0] for key in keys}) == len(keys), (name, keys)
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.group_name == "ingestion":
            continue
        for vendor in node.kinds & VENDORS:
            assert key.path[-1].startswith(f"{vendor}_"), key


def test_dbt_descriptions_leave_the_sql_out(graph: dg.AssetGraph) -> None:
    transform = [graph.get(key) for key in graph.get_all_asset_keys() if graph.get(key).group_name == "transform"]
    assert transform
    for node in transform:
        assert node.description and "Raw SQL" not in node.description and "```" not in node.description, node.key
        assert not node.description.startswith("dbt "), f"{node.key}: no description in its yml"


def sync_result() -> SyncResult:
    result = SyncResult(run_id="r1", destination="hubspot", object="contacts", dry_run=True, started_at=STARTED,
                        added=2)
    result.preview = [
        Change(EMAIL, {"email": EMAIL}, "add", {"firstname": "Jane", "demo_booked_at": EPOCH_MS}),
        Change("bo@example.org", {"email": "bo@example.org"}, "add", {"latest_touch_at": MOMENT}),
    ]
    return result


def test_a_sync_preview_is_a_markdown_table_with_iso_dates_and_masked_emails() -> None:
    preview = materialization_metadata(sync_result())["preview"]

    assert isinstance(preview, dg.MarkdownMetadataValue)
    lines = preview.value.splitlines()
    assert lines[0] == "| action | key | fields written |" and lines[1] == "|---|---|---|"
    assert f"| add | {MASKED} | demo_booked_at: 2026-09-01T09:30:00Z; firstname: Jane |" in lines
    assert "| add | bo***@example.org | latest_touch_at: 2026-09-01T09:30:00Z |" in lines
    assert EMAIL not in preview.value and EPOCH_MS not in preview.value


def test_an_email_preview_masks_the_recipient_and_where_the_rest_is() -> None:
    result = SendResult(run_id="r2", dry_run=True, started_at=STARTED, sent=3)
    result.preview = [Message(key=f"demo_nurture:1:{EMAIL}", email=EMAIL, sequence="demo_nurture", step=1,
                              template_id=7, params={"FIRSTNAME": "Jane", "EMAIL": EMAIL})]

    preview = preview_markdown(("step", "to", "template", "message key", "params"), send_preview_rows(result),
                               result.sent, result.run_id, None).value

    assert f"| demo_nurture/1 | {MASKED} | 7 | demo_nurture:1:{MASKED} | EMAIL: {MASKED}, FIRSTNAME: Jane |" in preview
    assert EMAIL not in preview
    assert preview.endswith("... and 2 more (activations.sync_log, sync run r2)")


def test_no_metadata_key_is_named_run_id() -> None:
    """Dagster shows its own ``run_id`` with every event; the activations' own run is ``sync_run_id``."""
    sync_metadata = materialization_metadata(sync_result())
    send_metadata = SendResult(run_id="r3", dry_run=False, started_at=STARTED).metadata()

    assert "run_id" not in sync_metadata and "run_id" not in send_metadata
    assert sync_metadata["sync_run_id"] == "r1" and send_metadata["sync_run_id"] == "r3"

