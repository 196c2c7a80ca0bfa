"""What one activation run did, a sync of one destination object (activations/engine.py) or the emails
(activations/sends.py), and its row in `activations.sync_runs`.

Both kinds share one shape, `RunResult`, and one way of being recorded, `recorded_run`: the row is inserted
`running` before anything is sent (a run killed midway stays visible as such) and completed with the counts,
the API calls and the status when the run ends, also when an exception stops it. The orchestration turns any
result into the same metadata.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

import duckdb

from activations.state import SCHEMA, dumps, utc_naive, utc_now

REJECTION_SAMPLE = 100
"""Rejected rows kept in a result with their reasons (all of them are in sync_log)."""

Item = TypeVar("Item")


class Rejection(NamedTuple):
    """A row the destination refused, with its own reason."""

    key: str
    reason: str


@dataclass
class RunResult(Generic[Item]):
    """The numbers of a run, for the operator, Dagster's metadata and activations.sync_runs.

    considered: rows (or messages) the run looked at. sent: handed to the destination (a dry run: would be).
    rejected: refused by it. batches: the fewest write calls the destination's batch limit allows for them.
    preview: up to the run's preview limit of what was sent (or would be); sync_log has all of it.
    """

    destination: str
    object: str
    dry_run: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None
    status: str = "running"
    considered: int = 0
    sent: int = 0
    rejected: int = 0
    batches: int = 0
    rejection_reasons: Counter[str] = field(default_factory=Counter)
    rejections: list[Rejection] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    preview: list[Item] = field(default_factory=list)

    @property
    def changed(self) -> int:
        """What sync_runs counts as changed: every row considered needed a write, unless a kind says less."""
        return self.considered

    @property
    def duration_seconds(self) -> float:
        return ((self.finished_at or utc_now()) - self.started_at).total_seconds()

    def left_over(self) -> dict[str, int]:
        """What the run leaves for the next one to retry: a run with any of it is `partial`."""
        return {"rejected": self.rejected}

    def reject(self, key: str, reason: str) -> None:
        self.rejected += 1
        self.rejection_reasons[reason] += 1
        if len(self.rejections) < REJECTION_SAMPLE:
            self.rejections.append(Rejection(key, reason))

    def counts(self) -> dict[str, Any]:
        """The numbers of this kind of run beyond the shared ones, JSON-ready."""
        return {}

    def metadata(self) -> dict[str, Any]:
        """Plain JSON-ready values for a Dagster materialization; lists are samples, first rows first."""
        return {
            "sync_run_id": self.run_id,
            "destination": self.destination,
            "object": self.object,
            "dry_run": self.dry_run,
            "status": self.status,
            "started_at": self.started_at.isoformat(timespec="milliseconds") + "Z",
            "considered": self.considered,
            "sent": self.sent,
            "rejected": self.rejected,
            "batches": self.batches,
            **self.counts(),
            "rejection_reasons": dict(self.rejection_reasons),
            "rejections": [rejection._asdict() for rejection in self.rejections],
            "api_calls": dict(self.api_calls),
            "duration_seconds": round(self.duration_seconds, 3),
        }


@contextmanager
def recorded_run(con: duckdb.DuckDBPyConnection, result: RunResult[Any], api_calls: Callable[[], Mapping[str, int]],
                 as_of: datetime | None) -> Iterator[RunResult[Any]]:
    """Record the run in sync_runs around the block: `running` first, then its counts, the API calls made
    meanwhile (from the client's running count) and its status: failed when an exception escapes the block
    (re-raised), partial when it left something over, else ok. `as_of` defaults to when it started."""
    con.execute(
        f"""insert into "{SCHEMA}".sync_runs (run_id, destination, object, started_at, dry_run, considered,
            changed, sent, rejected, api_calls, status, as_of)
        values (?, ?, ?, ?, ?, 0, 0, 0, 0, '{{}}', 'running', ?)""",
        [result.run_id, result.destination, result.object, result.started_at, result.dry_run,
         utc_naive(as_of or result.started_at)],
    )
    calls_before = dict(api_calls())
    error: str | None = None
    try:
        yield result
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        raise
    finally:
        result.api_calls = {endpoint: count - calls_before.get(endpoint, 0)
                            for endpoint, count in sorted(api_calls().items())
                            if count > calls_before.get(endpoint, 0)}
        result.finished_at = utc_now()
        result.status = "failed" if error else ("partial" if any(result.left_over().values()) else "ok")
        con.execute(
            f"""update "{SCHEMA}".sync_runs
            set finished_at = ?, considered = ?, changed = ?, sent = ?, rejected = ?, api_calls = ?,
                status = ?, error = ?
            where run_id = ?""",
            [result.finished_at, result.considered, result.changed, result.sent, result.rejected,
             dumps(result.api_calls), result.status, error, result.run_id],
        )
