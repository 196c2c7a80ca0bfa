"""Activation assets: one per sync (docs/sync-engine.md), pushing a dbt sync model's differences to HubSpot or Brevo,
and ``brevo_email_sends``, which sends the lifecycle emails due (activations/sends.py).

Keys are ``<destination>_<object>_sync`` (``hubspot_contacts_sync``): the graph shows a key's last part only,
and the raw tables already read ``contacts`` twice. Each depends on its dbt model (``sync/sync_crm__contacts``);
notes and list members also depend on their destination's contacts, which must exist first, and the emails
follow Brevo's contacts (a template may read the contact's attributes). A run that sent emails then rebuilds
the models that read the send ledger (orchestration/builds.py), and the list members follow the emails, so
they are synced from the state after the sends.

They are one step, ``activate_destinations``, with a thread per destination (``LANES``): HubSpot and Brevo
limit calls separately, so neither half waits for the other's quota. The threads share the warehouse (one
DuckDB database in one process; the rebuild after the sends runs dbt in this process for that reason), each
asset is materialized as it ends, and a failure stops only what follows it in its lane.
The engine writes ``activations.sync_state`` and the emails ``activations.send_ledger``, which dbt reads back
as sources that are not asset dependencies (the loop stays out of the graph, see transform.py). The emails'
ledger is on the run's clock: the ``lifecycle/as_of`` tag when there is one.

Partial runs show in the UI: every activation asset carries the check ``no_rejections`` (severity WARN),
which fails when the run left a row rejected or an email unconfirmed; its metadata has the counts.

Dry run: a run tagged ``lifecycle/dry_run=true`` (``lifecycle run --dry-run``) computes every diff and
every email due and reports them (counts, and a preview of the rows it would add, change or remove and of
the emails it would send) without calling a destination. It works on the run's scratch copy of the warehouse
(orchestration/resources.py), which is thrown away, so the full list goes to a CSV file in
``$LIFECYCLE_HOME/logs``.

Before anything is sent, each asset checks its destination's settings and credential (orchestration/
preflight.py), and a real run refuses to push state older than the latest real activation's (its
``lifecycle/as_of``, else now, before the latest recorded in ``activations.sync_runs``) unless it is tagged
``lifecycle/replay=true``: each fails with one line saying what to fix.
"""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at definition time.
import queue
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster import AssetExecutionContext

from activations.brevo import BrevoClient
from activations.destinations import (
    CRM_CONTACTS,
    CRM_NOTES,
    MARKETING_CONTACTS,
    MARKETING_LIST_MEMBERS,
    BrevoContacts,
    BrevoListMembers,
    HubSpotContacts,
    HubSpotNotes,
    attempt_log,
    maybe_applied_keys,
)
from activations.engine import SyncObject, SyncResult, sync
from activations.hubspot import HubSpotClient
from activations.runs import RunResult
from activations.sends import SETTLE_SECONDS, SendResult, send_due
from activations.state import SCHEMA, migrate
from orchestration import builds
from orchestration.dbt_process import (
    BUILD_DEFINITION,
    RebuildFailed,
    build_record_dir,
    rebuild_after_sends,
    shared_warehouse,
)
from orchestration.defs.ingest import WAREHOUSE_POOL
from orchestration.defs.transform import AS_OF_TAG
from orchestration.preflight import check_activation_clock
from orchestration.resources import DRY_RUN_TAG, REPLAY_TAG, LifecycleSettings, refusal_as_failure, tag_is_set
from settings import Settings, secret_values

Adapter = HubSpotContacts | HubSpotNotes | BrevoContacts | BrevoListMembers

ACTIVATE_GROUP = "activate"
PREVIEW_ROWS = 20
"""Rows of a dry run's preview shown in the metadata and printed; sync_log holds all of them."""
REJECTION_ROWS = 20
CHECK_NAME = "no_rejections"
EMAILS_KEY = dg.AssetKey("brevo_email_sends")
EMAILS_OBJECT = ("brevo", "emails")
"""The emails' ``destination, object`` in ``activations.sync_runs`` and in a dry run's file name."""
HUBSPOT_CONTACTS_KEY = dg.AssetKey("hubspot_contacts_sync")
HUBSPOT_NOTES_KEY = dg.AssetKey("hubspot_notes_sync")
BREVO_CONTACTS_KEY = dg.AssetKey("brevo_contacts_sync")
BREVO_LIST_MEMBERS_KEY = dg.AssetKey("brevo_list_members_sync")
EMAILS_AFTER = (dg.AssetKey(["sync", "sync_marketing__emails"]), BREVO_CONTACTS_KEY)
LANES = ((HUBSPOT_CONTACTS_KEY, HUBSPOT_NOTES_KEY), (BREVO_CONTACTS_KEY, EMAILS_KEY, BREVO_LIST_MEMBERS_KEY))
"""Each destination's assets in the order they run: a lane per destination, the lanes side by side."""
ACTIVATE_STEP = "activate_destinations"
ASSET_SECONDS = "wall_seconds"
"""The metadata entry of an activation asset's whole time in its lane."""
FAILED_ASSETS = "failed_assets"
"""The metadata of a step failure that names each asset that failed, with its error's first line."""
EMAIL_LOCAL_PART = re.compile(r"([^\s@\"'<>\[\],;:]{1,2})[^\s@\"'<>\[\],;:]*@")
EPOCH_MS_FIELD = ("_at", "timestamp")
"""Fields the sync models send as epoch milliseconds (HubSpot datetimes): shown as ISO 8601 in previews."""


@dataclass(frozen=True)
class Activation:
    """One sync: the destination and object it writes (as ``activations.sync_runs`` names them), the dbt
    model it reads, the assets it must follow, and how to reach its destination."""

    destination: str
    object: str
    source: SyncObject
    after: tuple[dg.AssetKey, ...]
    connect: Callable[[Settings, duckdb.DuckDBPyConnection], Adapter]

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(f"{self.destination}_{self.object}_sync")


def _hubspot(settings: Settings) -> HubSpotClient:
    return HubSpotClient(settings.hubspot_token.reveal(), settings.hubspot_base_url,
                         mask=secret_values(settings))


def _brevo(settings: Settings) -> BrevoClient:
    return BrevoClient(settings.brevo_api_key.reveal(), settings.brevo_base_url,
                       mask=secret_values(settings))


DESTINATION_NAMES = {"hubspot": "HubSpot", "brevo": "Brevo"}
ACTIVATIONS = (
    Activation("hubspot", "contacts", CRM_CONTACTS, (),
               lambda settings, con: HubSpotContacts(_hubspot(settings))),
    Activation("hubspot", "notes", CRM_NOTES, (HUBSPOT_CONTACTS_KEY,),
               lambda settings, con: HubSpotNotes(_hubspot(settings),
                                                  maybe_applied_keys(con, "hubspot", "notes"),
                                                  attempt_log(con, "hubspot", "notes"))),
    Activation("brevo", "contacts", MARKETING_CONTACTS, (),
               lambda settings, con: BrevoContacts(_brevo(settings))),
    Activation("brevo", "list_members", MARKETING_LIST_MEMBERS, (BREVO_CONTACTS_KEY, EMAILS_KEY),
               lambda settings, con: BrevoListMembers(_brevo(settings))),
)
ACTIVATION_OF = {activation.key: activation for activation in ACTIVATIONS}
DESTINATION_OF = {**{activation.key: activation.destination for activation in ACTIVATIONS}, EMAILS_KEY: "brevo"}


@dataclass(frozen=True)
class RunInfo:
    """What the assets read of their Dagster run, handed to the lanes' threads (the context stays in the step's)."""

    run_id: str
    tags: Mapping[str, str]

    @property
    def dry_run(self) -> bool:
        return is_dry_run(self.tags)

    @property
    def as_of(self) -> str | None:
        return self.tags.get(AS_OF_TAG)


Done = tuple[dg.MaterializeResult, list[tuple[str, str]]]
"""An asset's materialization and the lines to log for it (level, text), logged by the step's thread."""


def is_dry_run(tags: Mapping[str, str]) -> bool:
    return tag_is_set(tags, DRY_RUN_TAG)


def mask_emails(text: str) -> str:
    """``jane.doe@example.com`` -> ``ja***@example.com``: what the UI and the terminal show says who, not the
    address (the full rows are in ``activations.sync_log`` and a dry run's CSV)."""
    return EMAIL_LOCAL_PART.sub(r"\1***@", text)


def readable_value(name: str, value: Any) -> str:
    """A field as a person reads it: a datetime, or the epoch milliseconds a sync model sends for one, in ISO
    8601 (UTC); email addresses masked."""
    if isinstance(value, datetime):
        text = value.isoformat(timespec="seconds").replace("+00:00", "Z")
    elif name.lower().endswith(EPOCH_MS_FIELD) and str(value).lstrip("-").isdigit():
        text = datetime.fromtimestamp(int(value) / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    elif isinstance(value, Mapping):
        text = ", ".join(f"{key}: {readable_value(str(key), item)}" for key, item in sorted(value.items()))
    else:
        text = str(value)
    return mask_emails(text)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def preview_rows(result: SyncResult, limit: int = PREVIEW_ROWS) -> list[tuple[str, str, str]]:
    """Per row sent (or that a dry run would send): action, key and the fields written, readable and masked."""
    return [(change.action, mask_emails(change.key),
             "; ".join(f"{name}: {readable_value(name, value)}" for name, value in sorted(change.fields.items())))
            for change in result.preview[:limit]]


def send_preview_rows(result: SendResult, limit: int = PREVIEW_ROWS) -> list[tuple[str, str, str, str, str]]:
    """Per email sent (or that a dry run would send): sequence/step, recipient, template, key and params."""
    return [(m.step_label, mask_emails(m.email), str(m.template_id), mask_emails(m.key),
             readable_value("params", dict(m.params))) for m in result.preview[:limit]]


def preview_markdown(header: Sequence[str], rows: Sequence[Sequence[str]], total: int, run_id: str,
                     listed_in: Path | None) -> dg.MetadataValue:
    """The preview as a Markdown table, and where the rest is when there are more rows than shown."""
    text = markdown_table(header, rows)
    if total > len(rows):
        text += f"\n\n... and {total - len(rows)} more ({listed_in or f'activations.sync_log, sync run {run_id}'})"
    return dg.MetadataValue.md(text)


def dry_run_list(settings: Settings, run: RunInfo, destination: str, object_: str) -> Path | None:
    """Where a dry run lists everything one asset would write (its scratch warehouse is thrown away);
    None for a real run, whose rows stay in activations.sync_log."""
    if not run.dry_run:
        return None
    return settings.home / "logs" / f"dry-run-{run.run_id}-{destination}-{object_}.csv"


def export_would_send(con: duckdb.DuckDBPyConnection, run_id: str, path: Path) -> None:
    """The sync_log rows of a dry run (key, action, fields), as CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"""copy (select key, action, fields from "{SCHEMA}".sync_log
                          where run_id = '{run_id}' and outcome = 'would_send' order by key)
                    to '{str(path).replace("'", "''")}' (header)""")


def refuse_older_state(con: duckdb.DuckDBPyConnection, tags: Mapping[str, str]) -> None:
    """A real activation as of a moment before the latest one would overwrite newer state in a live
    destination: the step fails with one line, unless the run is tagged ``lifecycle/replay=true``."""
    with refusal_as_failure():
        check_activation_clock(con, parse_as_of(tags.get(AS_OF_TAG)), replay=tag_is_set(tags, REPLAY_TAG))


def no_rejections(key: dg.AssetKey, counts: dict[str, int]) -> dg.AssetCheckResult:
    """The check that makes a partial run visible: passed when nothing was rejected or left unconfirmed."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=CHECK_NAME,
        passed=not any(counts.values()),
        severity=dg.AssetCheckSeverity.WARN,
        metadata=counts,
    )


def _check_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(CHECK_NAME, asset=key,
                             description="Warns when the run left rows rejected (or emails unconfirmed); "
                                         "they are retried next run. Reasons in activations.sync_log.")


def parse_as_of(value: str | None) -> datetime | None:
    """The ``lifecycle/as_of`` tag (ISO 8601, ``Z`` or an offset) as a datetime, None without one."""
    if not value:
        return None
    return datetime.fromisoformat(value.strip())


def masked(value: Any) -> Any:
    """A metadata sample with every email address in it masked, at any depth."""
    if isinstance(value, str):
        return mask_emails(value)
    if isinstance(value, Mapping):
        return {name: masked(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [masked(item) for item in value]
    return value


def preview_table(result: RunResult[Any], listed_in: Path | None = None) -> dg.MetadataValue:
    """The first rows a run sent (or a dry run would send) as a Markdown table: emails, or a sync's rows."""
    if isinstance(result, SendResult):
        return preview_markdown(("step", "to", "template", "message key", "params"), send_preview_rows(result),
                                result.sent, result.run_id, listed_in)
    return preview_markdown(("action", "key", "fields written"), preview_rows(result), result.changed,
                            result.run_id, listed_in)


def materialization_metadata(result: RunResult[Any], listed_in: Path | None = None) -> dict[str, Any]:
    """A run's numbers as Dagster metadata, a sync's or the emails' alike: mappings as JSON, the first
    ``REJECTION_ROWS`` of each sample (rejections, unconfirmed keys) as JSON with emails masked, and the
    preview table."""
    metadata: dict[str, Any] = {}
    for name, value in result.metadata().items():
        if isinstance(value, list):
            value = dg.MetadataValue.json(masked(value[:REJECTION_ROWS]))
        elif isinstance(value, dict):
            value = dg.MetadataValue.json(value)
        metadata[name] = value
    metadata["preview"] = preview_table(result, listed_in)
    return metadata


def sync_one(activation: Activation, settings: Settings, run: RunInfo) -> Done:
    """One sync, from its dbt model to its destination: the materialization and the lines to log."""
    destination, object_ = activation.destination, activation.object
    listed_in = dry_run_list(settings, run, destination, object_)
    with shared_warehouse(settings) as con:
        if not run.dry_run:
            refuse_older_state(con, run.tags)
        target = activation.connect(settings, con)
        try:
            result = sync(con, activation.source, target, dry_run=run.dry_run, as_of=parse_as_of(run.as_of))
        finally:
            target.client.close()
        if listed_in:
            export_would_send(con, result.run_id, listed_in)
    log = [("info", f"{destination} {object_}{' (dry run)' if run.dry_run else ''}: {result.changed} of "
                    f"{result.considered} rows changed, {result.sent} sent, {result.rejected} rejected")]
    log += [("info", f"{destination} {object_} dry run: {' '.join(row)}") for row in preview_rows(result)
            if run.dry_run]
    if result.rejected:
        log.append(("warning", f"{destination} {object_}: {result.rejected} rows rejected "
                               f"({dict(result.rejection_reasons)}); they are retried next run"))
    check = no_rejections(activation.key, result.left_over())
    return dg.MaterializeResult(asset_key=activation.key, metadata=materialization_metadata(result, listed_in),
                                check_results=[check]), log


def send_emails(settings: Settings, run: RunInfo) -> Done:
    """The emails due, then the rebuild of the models that read the send ledger when the sends moved it."""
    listed_in = dry_run_list(settings, run, *EMAILS_OBJECT)
    record = builds.recorded(build_record_dir(settings))
    built_from = builds.inputs(settings.warehouse_path, BUILD_DEFINITION, run.as_of)
    with shared_warehouse(settings) as con, _brevo(settings) as client:
        if not run.dry_run:
            refuse_older_state(con, run.tags)
        settle_seconds = SETTLE_SECONDS if settings.brevo_settle_seconds is None else settings.brevo_settle_seconds
        result = send_due(con, client, as_of=parse_as_of(run.as_of), dry_run=run.dry_run,
                          preview_limit=PREVIEW_ROWS, settle_seconds=settle_seconds)
        if listed_in:
            export_would_send(con, result.run_id, listed_in)
        ledger = builds.ledger_state(con)
    log: list[tuple[str, str]] = []
    settled: bool | str = False
    if not run.dry_run and ledger != record.get("ledger"):
        # The ledger moved since the sequence models were built (this run's sends, or an earlier run's that
        # died before this rebuild): rebuild what reads it, so that the marts and list memberships show the
        # sends (orchestration/builds.py). The build record still holds when it held before.
        was_current = built_from is not None and built_from == record.get("inputs")
        builds.forget(build_record_dir(settings))
        try:
            rebuild_after_sends(settings, run.as_of)
        except RebuildFailed as error:  # the emails are out and recorded: that stands
            settled = f"rebuild failed: {error}"
            log.append(("warning", f"brevo emails: the models that read the send ledger were not rebuilt "
                                   f"({settled}); the next run's build catches up"))
        else:
            settled = True
            rebuilt_from = builds.inputs(settings.warehouse_path, BUILD_DEFINITION, run.as_of)
            builds.remember(build_record_dir(settings), rebuilt_from if was_current else None, ledger)
            log.append(("info", "brevo emails: rebuilt the models that read the send ledger"))
    verb = "would send" if run.dry_run else "sent"
    log.append(("info", f"brevo emails{' (dry run)' if run.dry_run else ''}: {verb} {result.sent} of "
                        f"{result.considered} messages, {result.rejected} rejected, {result.reconciled} "
                        f"reconciled, {result.resent} sent again after a lost answer, {result.withdrawn} "
                        f"withdrawn, {result.unconfirmed} unconfirmed"))
    log += [("info", f"brevo emails dry run: {' '.join(row)}") for row in send_preview_rows(result) if run.dry_run]
    if result.rejected or result.unconfirmed:
        log.append(("warning", f"brevo emails: {result.rejected} rejected ({dict(result.rejection_reasons)}), "
                               f"{result.unconfirmed} unconfirmed; they are retried next run"))
    metadata = {**materialization_metadata(result, listed_in), "settled": settled}
    check = no_rejections(EMAILS_KEY, result.left_over())
    return dg.MaterializeResult(asset_key=EMAILS_KEY, metadata=metadata, check_results=[check]), log


def run_lane(lane: Sequence[dg.AssetKey], settings: Settings, run: RunInfo, finished: queue.SimpleQueue) -> None:
    """One destination's assets in order, each reported to ``finished`` as it ends (with its seconds), or its
    error; an error ends the lane, since what follows in it depends on what failed. ``None`` marks the end."""
    try:
        for key in lane:
            started = time.monotonic()
            try:
                result, log = send_emails(settings, run) if key == EMAILS_KEY else sync_one(
                    ACTIVATION_OF[key], settings, run)
            except BaseException as error:  # reported to the step, which fails once every lane has ended
                finished.put((key, error))
                return
            # the asset's whole time (``duration_seconds`` is the sync's or the sends' own, without the rebuild)
            timed = dg.MaterializeResult(asset_key=key, check_results=result.check_results, metadata={
                **(result.metadata or {}), ASSET_SECONDS: round(time.monotonic() - started, 1)})
            finished.put((key, (timed, log)))
    finally:
        finished.put(None)


def failure_line(error: BaseException) -> str:
    """An error as one line: a ``dg.Failure``'s own description, else ``Class: first line``."""
    if isinstance(error, dg.Failure) and error.description:
        return error.description.splitlines()[0]
    text = str(error).partition("\n")[0]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _spec(key: dg.AssetKey, deps: Sequence[dg.AssetKey], destination: str, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(key, deps=deps, group_name=ACTIVATE_GROUP, kinds={destination}, description=description)


ACTIVATION_ASSETS = [
    *(_spec(activation.key, [dg.AssetKey(["sync", activation.source.model.split(".")[-1]]), *activation.after],
            activation.destination,
            f"Reverse ETL: sync {activation.source.model} to {DESTINATION_NAMES[activation.destination]} "
            f"{activation.object.replace('_', ' ')}. Only adds and changed fields are sent; each run's rows, "
            "rejections and reasons are in activations.sync_runs and sync_log.")
      for activation in ACTIVATIONS),
    _spec(EMAILS_KEY, EMAILS_AFTER, "brevo",
          "Send the emails due (sync.sync_marketing__emails) through Brevo transactional email, each message key "
          "at most once ever (write-ahead send ledger; lost answers are looked up in Brevo's event log), then "
          "rebuild the models that read the ledger (fct_messages, messages_due, list members, the emails) when "
          "it changed."),
]


@dg.multi_asset(
    name=ACTIVATE_STEP,
    specs=ACTIVATION_ASSETS,
    check_specs=[_check_spec(asset.key) for asset in ACTIVATION_ASSETS],
    can_subset=True,
    pool=WAREHOUSE_POOL,
)
def activate_destinations(context: AssetExecutionContext,
                          lifecycle: LifecycleSettings) -> Iterator[dg.MaterializeResult]:
    """HubSpot's assets and Brevo's run side by side, one thread each (LANES): the two vendors limit calls
    separately, so neither half waits for the other's quota. Each asset is materialized as it ends; the step
    fails, after both lanes ended, when either failed."""
    selected = context.selected_asset_keys
    lanes = [[key for key in lane if key in selected] for lane in LANES]
    run = RunInfo(context.run.run_id, dict(context.run.tags))
    failures: dict[dg.AssetKey, BaseException] = {}
    finished: queue.SimpleQueue = queue.SimpleQueue()
    threads = []
    for lane in filter(None, lanes):
        try:  # the settings, checked once per vendor; a dry run's scratch copy is made here, before the threads
            settings = lifecycle.require(DESTINATION_OF[lane[0]])
        except dg.Failure as refusal:
            failures[lane[0]] = refusal
            continue
        with shared_warehouse(settings) as con:
            migrate(con)  # once, before two threads could both create the activation tables
        threads.append(threading.Thread(target=run_lane, args=(lane, settings, run, finished),
                                        name=f"activate-{DESTINATION_OF[lane[0]]}", daemon=True))
    for thread in threads:
        thread.start()
    running = len(threads)
    while running:
        item = finished.get()
        if item is None:
            running -= 1
            continue
        key, outcome = item
        if isinstance(outcome, BaseException):
            failures[key] = outcome
            detail = failure_line(outcome) if isinstance(outcome, dg.Failure) else "".join(
                traceback.format_exception(outcome))
            context.log.error(f"{key.to_user_string()} failed: {detail}")
            continue
        result, log = outcome
        for level, line in log:
            getattr(context.log, level)(line)
        yield result
    for thread in threads:
        thread.join()
    if failures:
        lines = {key.to_user_string(): failure_line(error) for key, error in failures.items()}
        raise dg.Failure(description="\n".join(f"{key}: {line}" for key, line in lines.items()),
                         metadata={FAILED_ASSETS: dg.MetadataValue.json(lines)}) from next(iter(failures.values()))


def build_definitions() -> dg.Definitions:
    activate_job = dg.define_asset_job(
        "activate",
        selection=dg.AssetSelection.groups(ACTIVATE_GROUP),
        description="Sync the dbt sync models to HubSpot and Brevo (contacts first, then notes and list "
                    "members) and send the lifecycle emails due. Tag a run "
                    f"`{DRY_RUN_TAG}=true` to report the changes without writing them, `{REPLAY_TAG}=true` to "
                    "activate as of a moment before the latest activation's.",
        executor_def=dg.in_process_executor,
    )
    return dg.Definitions(assets=[activate_destinations], jobs=[activate_job])
