"""What ``lifecycle run`` prints: each step of the run as it starts and ends, then what the run did.

Progress comes from Dagster's own event stream: the instance calls a listener with every event of the run
(``execute_job(listener=...)``). On a terminal it is a live ``rich`` display; anywhere else (a pipe, a log
file, CI) one timestamped line per step start and end. The summary reads the numbers the assets put in their
materialization metadata, and the messages still due from the warehouse.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TextIO

from orchestration.builds import STANDING
from orchestration.reporting import messages_still_due

if TYPE_CHECKING:
    import dagster as dg

STAGE_PREFIXES = (("ingest_", "ingest"), ("transform_", "transform"), ("activate_", "activate"),
                  ("published__", "publish"))
FIRST_REASONS = 3
"""Rejection reasons shown per destination in the summary; the materialization and sync_log have all."""
DAGSTER_UI_URL = "http://127.0.0.1:3000"
"""Where ``dagster dev`` serves the UI by default."""


def stage_of(step_key: str) -> str:
    """The ingestion steps are ``ingest_<source>``, dbt is ``transform_dbt``, the analysts' copy and the report
    are ``published__*``, every other step (``activate_destinations``, or one of its assets) activates."""
    for prefix, stage in STAGE_PREFIXES:
        if step_key.startswith(prefix):
            return stage
    return "activate"


def step_label(step_key: str) -> str:
    """``ingest forms``, ``transform dbt build``, ``activate destinations``, ``activate hubspot_contacts_sync``
    (an asset of that step), ``publish report``."""
    stage = stage_of(step_key)
    name = next((step_key.removeprefix(prefix) for prefix, _ in STAGE_PREFIXES if step_key.startswith(prefix)),
                step_key)
    return f"{stage} {'dbt build' if step_key == 'transform_dbt' else name}"


def activation_outcome(metadata: Mapping[str, Any]) -> str:
    """What one activation asset did, in a few words."""
    if metadata.get("dry_run"):  # a sync's dry run sends nothing: what it would write is what changed
        return f"would send {int(metadata.get('changed', metadata['sent'])):,}"
    return f"sent {int(metadata['sent']):,}, rejected {int(metadata['rejected']):,}"


def plain_metadata(materialization: Any) -> dict[str, Any]:
    return {name: value.value for name, value in materialization.metadata.items()}


def step_outcome(step_key: str, materializations: list[tuple[str, dict[str, Any]]]) -> str:
    """A step's result in a few words, from what its assets materialized."""
    if not materializations:
        return "nothing materialized" if step_key == "transform_dbt" else ""
    stage = stage_of(step_key)
    metadata = [meta for _, meta in materializations]
    if stage == "ingest":
        return f"{sum(int(meta.get('rows_loaded') or 0) for meta in metadata):,} rows loaded"
    if stage == "transform":
        stood = sum(1 for meta in metadata if meta.get(STANDING))
        built = f"{len(materializations) - stood} models and seeds built"
        return f"{built}, {stood} stood as built: nothing they read changed" if stood else built
    if stage == "activate":
        return f"{len(materializations)} assets materialized"
    return ", ".join(str(meta["path"]) for meta in metadata if meta.get("path"))


class Display(Protocol):
    def started(self, step_key: str, at: float) -> None: ...

    def ended(self, step_key: str, at: float, status: str, outcome: str, seconds: float | None = None) -> None:
        """A step ended (or, with its own ``seconds``, one asset of a step that materializes several)."""

    def close(self) -> None: ...


class PlainDisplay:
    """One line per step start and end, with its UTC time: what a log or a CI job keeps."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.starts: dict[str, float] = {}

    def _line(self, at: float, text: str) -> None:
        stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        print(f"{stamp}  {text}", file=self.out, flush=True)

    def started(self, step_key: str, at: float) -> None:
        self.starts[step_key] = at
        self._line(at, f"{step_label(step_key)}: started")

    def ended(self, step_key: str, at: float, status: str, outcome: str, seconds: float | None = None) -> None:
        seconds = at - self.starts.get(step_key, at) if seconds is None else seconds
        self._line(at, f"{step_label(step_key)}: {status} in {seconds:.1f} s" + (f" ({outcome})" if outcome else ""))

    def close(self) -> None:
        """Nothing to tear down: every line is out already."""


class LiveDisplay:
    """A ``rich`` progress display: a spinner per running step, each finished step with its time and result."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        # The run's own prints go to the job's log file (execute_job redirects them): rich must not take over
        # sys.stdout, which is that file while the run executes.
        self.progress = Progress(SpinnerColumn(finished_text=" "), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), TextColumn("{task.fields[outcome]}"),
                                 console=Console(file=out), redirect_stdout=False, redirect_stderr=False)
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def started(self, step_key: str, at: float) -> None:
        self.tasks[step_key] = self.progress.add_task(step_label(step_key), total=1, outcome="")

    def ended(self, step_key: str, at: float, status: str, outcome: str, seconds: float | None = None) -> None:
        task = self.tasks.get(step_key)
        if task is None:  # skipped before it started, or an asset of a step: show it finished all the same
            task = self.tasks[step_key] = self.progress.add_task(step_label(step_key), total=1, outcome="")
        mark = "[green]✓[/]" if status == "done" else f"[red]✗ {status}[/]"
        self.progress.update(task, completed=1, description=f"{mark} {step_label(step_key)}",
                             outcome=f"[dim]{outcome}[/]" if outcome else "")

    def close(self) -> None:
        self.progress.stop()


@dataclass
class RunProgress:
    """The listener ``execute_job`` hands to the Dagster instance: each step's start and end goes to the
    display as the events arrive; the materializations are kept per step for its end line."""

    display: Display
    materialized: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def for_stream(cls, out: TextIO) -> RunProgress:
        """Live on a terminal, timestamped lines anywhere else."""
        return cls(LiveDisplay(out) if out.isatty() else PlainDisplay(out))

    def __call__(self, entry: Any) -> None:
        import dagster as dg

        event = entry.dagster_event
        if event is None or event.step_key is None:
            return
        step, at = event.step_key, entry.timestamp or time.time()
        if event.event_type == dg.DagsterEventType.STEP_START:
            self.display.started(step, at)
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            asset, metadata = materialization.asset_key.to_user_string(), plain_metadata(materialization)
            self.materialized[step].append((asset, metadata))
            if stage_of(step) == "activate" and "sent" in metadata:  # the lanes' assets end one by one
                from orchestration.defs.activate import ASSET_SECONDS

                self.display.ended(asset, at, "done", activation_outcome(metadata), metadata.get(ASSET_SECONDS))
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            self.display.ended(step, at, "done", step_outcome(step, self.materialized[step]))
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            self.display.ended(step, at, "FAILED", "")
        elif event.event_type == dg.DagsterEventType.STEP_SKIPPED:
            self.display.ended(step, at, "skipped", "an upstream step failed")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.display.close()


def materializations(result: dg.ExecuteInProcessResult) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each asset a run materialized (``hubspot_contacts_sync`` ...) with its metadata as plain values."""
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        yield materialization.asset_key.to_user_string(), plain_metadata(materialization)


def dagster_ui_command(home: Path, dagster_home: Path) -> str:
    """How to open the Dagster UI on the instance that holds this home's runs."""
    return f"LIFECYCLE_HOME={home} DAGSTER_HOME={dagster_home} .venv/bin/dagster dev -w workspace.yaml"


def first_reasons(reasons: Mapping[str, int], limit: int = FIRST_REASONS) -> list[str]:
    """The most frequent rejection reasons, each with its count, emails masked."""
    from orchestration.defs.activate import mask_emails

    ranked = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [f"{count} x {mask_emails(reason)}" for reason, count in ranked]


def per_sequence(per_step: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """``{"demo_nurture/1": 3, "demo_nurture/2": 1}`` -> ``{"demo_nurture": {"1": 3, "2": 1}}``."""
    sequences: dict[str, dict[str, int]] = defaultdict(dict)
    for label, count in per_step.items():
        sequence, _, step = label.rpartition("/")
        sequences[sequence][step] = count
    return dict(sorted(sequences.items()))


def run_summary(result: dg.ExecuteInProcessResult, *, warehouse_path: Path, home: Path, dagster_home: Path,
                log_path: Path, dry_run: bool) -> list[str]:
    """What the run did, for the terminal: rows synced and rejected per destination with the first reasons,
    emails sent per sequence, messages still due, and where the run's log, the step output and the report are."""
    lines: list[str] = []
    syncs = [(asset, meta) for asset, meta in materializations(result) if "sent" in meta and "rejected" in meta]
    emails = [(asset, meta) for asset, meta in syncs if "per_step" in meta]
    verb = "would sync" if dry_run else "synced"
    if syncs:
        lines.append(f"rows {verb} / rejected per destination:")
    for asset, meta in syncs:
        # a sync's `sent` counts every row it sent, the rejected ones included; the emails' only those Brevo took;
        # a dry run sends nothing, a sync's `changed` is what it would send
        if "per_step" in meta:
            accepted = int(meta["sent"])
        else:
            accepted = int(meta["changed"]) if dry_run else int(meta["sent"]) - int(meta["rejected"])
        lines.append(f"  {asset:<28} {accepted:>8,} / {int(meta['rejected']):,}")
        lines.extend(f"    rejected: {reason}" for reason in first_reasons(meta.get("rejection_reasons") or {}))
    for asset, meta in emails:
        sequences = per_sequence(meta.get("per_step") or {})
        lines.append(f"emails {'that would be sent' if dry_run else 'sent'} per sequence ({asset}): "
                     f"{int(meta['sent']):,}" + ("" if sequences else " (none due)"))
        for sequence, steps in sequences.items():
            detail = ", ".join(f"step {step}: {count:,}" for step, count in steps.items())
            lines.append(f"  {sequence:<28} {sum(steps.values()):>8,}  ({detail})")
    if emails and not dry_run:
        due = messages_still_due(warehouse_path)
        lines.append(f"messages still due (sent by a later run): {sum(count for *_, count in due):,}")
        lines.extend(f"  {sequence:<28} step {step}: {count:,}" for sequence, step, count in due)
    report = next((meta["path"] for asset, meta in materializations(result)
                   if asset == "published/report" and meta.get("path")), None)
    lines.append(f"the run's log: Dagster run id {result.run_id}; open it with\n"
                 f"  {dagster_ui_command(home, dagster_home)}\n"
                 f"  then {DAGSTER_UI_URL}/runs/{result.run_id}")
    lines.append(f"step output (dbt's log lines, tracebacks): {log_path}")
    if report:
        lines.append(f"the report: {report}")
    return lines
