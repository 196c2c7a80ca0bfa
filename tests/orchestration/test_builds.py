"""What a build at a fixed as-of may leave standing (orchestration/builds.py): the tables whose state changed
since the last build, and the models that read none of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from orchestration import builds

BUILT = {"as_of": "2026-10-01T00:00:00Z", "project": "p1",
         "tables": {"raw_crm.contacts": "(10, '1.5')", "raw_forms.submissions": "(7, '1.5')",
                    builds.LEDGER: "3:99"}}


def with_tables(**tables: str) -> dict[str, Any]:
    return {**BUILT, "tables": {**BUILT["tables"], **{name.replace("__", "."): state for name, state in tables.items()}}}


def test_nothing_changed_at_the_same_as_of_and_project() -> None:
    assert builds.changed_tables(BUILT, dict(BUILT)) == set()


def test_the_tables_whose_state_moved_are_the_changed_ones() -> None:
    now = with_tables(raw_forms__submissions="(8, '1.6')")
    now["tables"]["raw_stripe.events"] = "(1, '1.6')"
    assert builds.changed_tables(BUILT, now) == {"raw_forms.submissions", "raw_stripe.events"}
    gone = {**BUILT, "tables": {"raw_crm.contacts": "(10, '1.5')", builds.LEDGER: "3:99"}}
    assert builds.changed_tables(BUILT, gone) == {"raw_forms.submissions"}


def test_another_as_of_project_or_no_record_cannot_be_compared() -> None:
    assert builds.changed_tables(BUILT, {**BUILT, "as_of": "2026-10-01T01:00:00Z"}) is None
    assert builds.changed_tables(BUILT, {**BUILT, "project": "p2"}) is None
    assert builds.changed_tables(None, BUILT) is None
    assert builds.changed_tables({}, BUILT) is None
    assert builds.changed_tables(BUILT, None) is None


def node(name: str, resource_type: str = "model") -> dict[str, Any]:
    return {"resource_type": resource_type, "fqn": ["lifecycle", name]}


MANIFEST = {
    "sources": {"source.lifecycle.raw_forms.submissions": {"schema": "raw_forms", "identifier": "submissions"},
                "source.lifecycle.raw_stripe.events": {"schema": "raw_stripe", "identifier": "events"}},
    "nodes": {"model.lifecycle.stg_forms": node("stg_forms"), "model.lifecycle.touches": node("touches"),
              "model.lifecycle.stg_stripe": node("stg_stripe"), "seed.lifecycle.forms": node("forms", "seed"),
              "model.lifecycle.calendar": node("calendar"),
              "test.lifecycle.not_null_touches": node("not_null_touches", "test")},
    "child_map": {"source.lifecycle.raw_forms.submissions": ["model.lifecycle.stg_forms"],
                  "model.lifecycle.stg_forms": ["model.lifecycle.touches"],
                  "seed.lifecycle.forms": ["model.lifecycle.touches"],
                  "model.lifecycle.touches": ["test.lifecycle.not_null_touches"],
                  "source.lifecycle.raw_stripe.events": ["model.lifecycle.stg_stripe"]},
}


def test_what_reads_no_changed_table_stands() -> None:
    assert builds.unaffected(MANIFEST, {"raw_forms.submissions"}) == [
        "model.lifecycle.calendar", "model.lifecycle.stg_stripe", "seed.lifecycle.forms"]
    assert builds.unaffected(MANIFEST, {"raw_forms.submissions", "raw_stripe.events"}) == [
        "model.lifecycle.calendar", "seed.lifecycle.forms"]


def test_a_table_that_is_no_source_builds_everything() -> None:
    assert builds.unaffected(MANIFEST, {"raw_forms.submissions", "raw_forms.something_new"}) is None


def test_the_inputs_follow_rows_loads_the_ledger_and_the_project_files(tmp_path: Path) -> None:
    warehouse, manifest, project_file = tmp_path / "warehouse.duckdb", tmp_path / "manifest.json", tmp_path / "p.yml"
    manifest.write_text("{}")
    project_file.write_text("vars: {attribution_lookback_days: 90}")
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema raw_forms; create schema raw_forms_staging; create schema activations")
        con.execute("create table raw_forms.submissions (email text, _dlt_load_id text)")
        con.execute("insert into raw_forms.submissions values ('a@example.com', '1.0')")
        con.execute("create table raw_forms._dlt_loads (load_id text)")
        con.execute("create table raw_forms_staging.submissions (email text)")
    definition = (manifest, project_file)
    first = builds.inputs(warehouse, definition, "2026-10-01T00:00:00Z")
    assert first is not None and first["tables"] == {"raw_forms.submissions": "(1, '1.0')", builds.LEDGER: "no ledger"}
    assert builds.inputs(warehouse, definition, None) is None

    with duckdb.connect(str(warehouse)) as con:
        con.execute("insert into raw_forms._dlt_loads values ('2.0')")
        con.execute("insert into raw_forms_staging.submissions values ('b@example.com')")
    assert builds.changed_tables(first, builds.inputs(warehouse, definition, "2026-10-01T00:00:00Z")) == set(), (
        "dlt's own tables and staging schemas are not what the models read")

    with duckdb.connect(str(warehouse)) as con:
        con.execute("update raw_forms.submissions set _dlt_load_id = '2.0'")
        con.execute("create table activations.send_ledger (message_key text, status text, send_tag text, "
                    "sent_at timestamp)")
    assert builds.changed_tables(first, builds.inputs(warehouse, definition, "2026-10-01T00:00:00Z")) == {
        "raw_forms.submissions", builds.LEDGER}

    project_file.write_text("vars: {attribution_lookback_days: 30}")
    assert builds.changed_tables(first, builds.inputs(warehouse, definition, "2026-10-01T00:00:00Z")) is None
