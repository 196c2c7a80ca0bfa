"""A sync's result and the emails' share one shape (activations/runs.py), which one function turns into the
Dagster metadata of either asset (orchestration/defs/activate.py)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from activations.engine import Change, SyncResult
from activations.runs import RunResult
from activations.sends import Message, SendResult
from orchestration.defs.activate import (
    REJECTION_ROWS,
    materialization_metadata,
    preview_markdown,
    preview_rows,
    send_preview_rows,
)

SHARED = {"sync_run_id", "destination", "object", "dry_run", "status", "started_at", "considered", "sent", "rejected",
          "batches", "rejection_reasons", "rejections", "api_calls", "duration_seconds", "preview"}


def rejected_thirty(result: RunResult) -> RunResult:
    for n in range(30):
        result.reject(f"key-{n}", "INVALID_EMAIL" if n % 3 else "BLOCKED")
    result.api_calls = {"POST /batch": 2}
    return result


def test_a_sync_and_the_emails_give_the_same_metadata_for_what_they_share() -> None:
    sync = rejected_thirty(SyncResult(destination="hubspot", object="contacts"))
    emails = rejected_thirty(SendResult())

    for result in (sync, emails):
        metadata = materialization_metadata(result)
        assert metadata.keys() >= SHARED
        assert metadata["rejected"] == 30
        assert metadata["rejection_reasons"] == dg.MetadataValue.json({"BLOCKED": 10, "INVALID_EMAIL": 20})
        assert metadata["rejections"] == dg.MetadataValue.json(
            [{"key": f"key-{n}", "reason": "INVALID_EMAIL" if n % 3 else "BLOCKED"} for n in range(REJECTION_ROWS)])
        assert metadata["api_calls"] == dg.MetadataValue.json({"POST /batch": 2})
    assert {"added", "accepted", "write_calls"} <= materialization_metadata(sync).keys()
    assert {"reconciled", "unconfirmed_keys", "per_step"} <= materialization_metadata(emails).keys()


def test_the_emails_left_unconfirmed_make_them_partial_but_not_a_sync() -> None:
    emails = SendResult(unconfirmed=2, unconfirmed_keys=[f"k-{n}" for n in range(40)])

    assert emails.left_over() == {"rejected": 0, "unconfirmed": 2}
    assert materialization_metadata(emails)["unconfirmed_keys"] == dg.MetadataValue.json(
        [f"k-{n}" for n in range(REJECTION_ROWS)])
    assert SyncResult(destination="brevo", object="contacts").left_over() == {"rejected": 0}


def test_the_preview_lists_the_first_rows_masked_and_counts_the_rest(tmp_path: Path) -> None:
    sync = SyncResult(destination="hubspot", object="contacts", dry_run=True, added=3,
                      preview=[Change(f"c{n}@example.com", {"email": f"c{n}@example.com"}, "add", {"n": n})
                               for n in range(3)])
    emails = SendResult(dry_run=True, sent=5,
                        preview=[Message(f"k-{n}", f"e{n}@example.com", "demo_nurture", 1, 11, {"n": n})
                                 for n in range(5)])

    rows = preview_markdown(("action", "key", "fields written"), preview_rows(sync, limit=2), sync.changed,
                            sync.run_id, None).value.splitlines()
    assert rows[2:] == ["| add | c0***@example.com | n: 0 |", "| add | c1***@example.com | n: 1 |", "",
                        f"... and 1 more (activations.sync_log, sync run {sync.run_id})"]
    rows = preview_markdown(("step", "to", "template", "message key", "params"), send_preview_rows(emails, limit=1),
                            emails.sent, emails.run_id, tmp_path / "all.csv").value.splitlines()
    assert rows[2:] == ["| demo_nurture/1 | e0***@example.com | 11 | k-0 | n: 0 |", "",
                        f"... and 4 more ({tmp_path / 'all.csv'})"]
    assert materialization_metadata(emails)["preview"] == preview_markdown(
        ("step", "to", "template", "message key", "params"), send_preview_rows(emails), emails.sent, emails.run_id,
        None)
