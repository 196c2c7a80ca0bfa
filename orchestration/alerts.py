"""Alerts for failed and partial runs, posted as Slack-compatible JSON to ``LIFECYCLE_ALERT_WEBHOOK_URL``.

A run that failed, or that succeeded with a failed asset check (``no_rejections`` warns when a destination
rejected rows or left emails unconfirmed; a dbt test may fail too), must not go unnoticed when nobody watches
the Dagster UI. The body is ``{"text": ...}``, which Slack's incoming webhooks (and the chat tools that copy
them) show as is, plus the same facts as fields for any other receiver: ``job``, ``run_id``, ``status``
(``failed`` or ``partial``), ``failures`` (the failing steps or checks), ``error`` (the first line of the
error, or the failed checks' counts) and ``link`` (the run's page, relative to where the Dagster UI is
served). Every secret of the settings is masked in it, and the webhook's URL, which usually embeds a token,
never appears in a log line or a message: a failed post is described by its status code or error type only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import dagster as dg
import httpx
from dagster._utils.error import SerializableErrorInfo

from settings import Secret, Settings

FAILED = "failed"
PARTIAL = "partial"
POST_TIMEOUT_SECONDS = 10.0
OUTCOME_EVENTS = (dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_SUCCESS)


@dataclass(frozen=True)
class Alert:
    job: str
    run_id: str
    status: str
    failures: tuple[str, ...]
    error: str

    @property
    def link(self) -> str:
        return f"/runs/{self.run_id}"

    def payload(self) -> dict[str, Any]:
        what = "FAILED" if self.status == FAILED else "finished PARTIALLY"
        text = (f"lifecycle: run {self.run_id} of job {self.job} {what}"
                f"{' (' + ', '.join(self.failures) + ')' if self.failures else ''}: {self.error}. "
                f"See {self.link} in the Dagster UI.")
        return {"text": text, "job": self.job, "run_id": self.run_id, "status": self.status,
                "failures": list(self.failures), "error": self.error, "link": self.link}


def _secrets(settings: Settings) -> list[str]:
    return [value.reveal() for value in (getattr(settings, f.name) for f in fields(settings))
            if isinstance(value, Secret) and value.reveal()]


def _masked(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _root_cause(error: SerializableErrorInfo) -> str:
    """The first line of the innermost cause: the user's error rather than Dagster's wrapper around it."""
    while error.cause is not None:
        error = error.cause
    return _first_line(error.message) or error.cls_name or "unknown error"


def failed_run_alert(instance: dg.DagsterInstance, run: dg.DagsterRun, settings: Settings) -> Alert:
    """The failing steps and the first error: a step's own error, else the run's failure message (e.g. a
    run found dead, or one that failed before any step)."""
    failures: list[str] = []
    errors: list[str] = []
    for entry in instance.all_logs(run.run_id, of_type={dg.DagsterEventType.STEP_FAILURE,
                                                         dg.DagsterEventType.RUN_FAILURE}):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            failures.append(f"step {event.step_key}")
            error = event.step_failure_data.error
            errors.append(_root_cause(error) if error else _first_line(event.message))
        else:
            errors.append(_first_line(event.message))
    error = next((line for line in errors if line), "no error recorded")
    return Alert(run.job_name, run.run_id, FAILED, tuple(failures), _masked(error, _secrets(settings)))


def partial_run_alert(instance: dg.DagsterInstance, run: dg.DagsterRun, settings: Settings) -> Alert | None:
    """A succeeded run with failed asset checks (with their numbers), or None when every check passed."""
    failures: list[str] = []
    details: list[str] = []
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if evaluation is None or evaluation.passed:
            continue
        check = f"{evaluation.asset_key.to_user_string()} {evaluation.check_name}"
        failures.append(f"check {check} ({evaluation.severity.value})")
        counts = ", ".join(f"{name} {value.value}" for name, value in evaluation.metadata.items()
                           if isinstance(value.value, int | float) and not isinstance(value.value, bool))
        details.append(f"{check}: {counts}" if counts else check)
    if not failures:
        return None
    return Alert(run.job_name, run.run_id, PARTIAL, tuple(failures),
                 _masked("; ".join(details), _secrets(settings)))


def run_outcomes(instance: dg.DagsterInstance, after: int, limit: int) -> Iterator[tuple[int, dg.DagsterRun]]:
    """The runs that failed or succeeded after the event ``after`` (an event storage id), oldest first, with
    the storage id of that event."""
    records = [record for event_type in OUTCOME_EVENTS for record in instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(event_type=event_type, after_storage_id=after),
        limit=limit, ascending=True).records]
    records = sorted(records, key=lambda record: record.storage_id)[:limit]
    runs = {run.run_id: run for run in instance.get_runs(
        filters=dg.RunsFilter(run_ids=[record.run_id for record in records]))} if records else {}
    for record in records:
        if record.run_id in runs:
            yield record.storage_id, runs[record.run_id]


def latest_outcome(instance: dg.DagsterInstance) -> int:
    """The storage id of the newest run failure or success event (0 when there is none)."""
    return max((record.storage_id for event_type in OUTCOME_EVENTS
                for record in instance.fetch_run_status_changes(event_type, limit=1).records), default=0)


def alert_for(instance: dg.DagsterInstance, run: dg.DagsterRun, settings: Settings) -> Alert | None:
    if run.status == dg.DagsterRunStatus.FAILURE:
        return failed_run_alert(instance, run, settings)
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return partial_run_alert(instance, run, settings)
    return None


def post_alert(url: Secret, alert: Alert) -> str | None:
    """Post ``alert``; None when the webhook took it (2xx), else why not, in words that never show the URL."""
    try:
        response = httpx.post(url.reveal(), json=alert.payload(), timeout=POST_TIMEOUT_SECONDS)
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return f"the webhook could not be reached ({type(error).__name__})"
    if response.is_success:
        return None
    return f"the webhook answered HTTP {response.status_code}"
