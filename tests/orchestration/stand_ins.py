"""Jobs named like the product's, with one empty step: for tests that need run records, schedules or sensors
of those jobs in a Dagster instance, not their work."""

from __future__ import annotations

import dagster as dg


@dg.op
def _noop() -> None:
    """Does nothing: the tests look at the run's record, not its step."""


@dg.job(name="lifecycle")
def lifecycle_stand_in() -> None:
    _noop()


@dg.job(name="activate")
def activate_stand_in() -> None:
    _noop()


@dg.job(name="transform")
def transform_stand_in() -> None:
    _noop()
