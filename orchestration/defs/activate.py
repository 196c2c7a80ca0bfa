"""Activation assets: one per sync (SPEC §4), pushing a dbt sync model's differences to HubSpot or Brevo.

Keys are ``[destination, object]`` (``hubspot/contacts``), each depending on its dbt model
(``sync/sync_crm__contacts``); notes and list members also depend on their destination's contacts, which
must exist first. The engine writes ``activations.sync_state``, which dbt reads back as a source that is
not an asset dependency (the loop stays out of the graph, see transform.py).

Dry run: a run tagged ``lifecycle/dry_run=true`` (``lifecycle run --dry-run``) computes every diff and
reports it (counts, and a preview of the rows it would add, change or remove) without calling a
destination or writing sync state.
"""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at definition time.
import json
from collections.abc import Callable
from dataclasses import dataclass
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
    maybe_applied_keys,
)
from activations.engine import SyncObject, SyncResult, sync
from activations.hubspot import HubSpotClient
from orchestration.defs.ingest import WAREHOUSE_POOL
from orchestration.resources import LifecycleSettings
from orchestration.settings import Settings

Adapter = HubSpotContacts | HubSpotNotes | BrevoContacts | BrevoListMembers

ACTIVATE_GROUP = "activate"
DRY_RUN_TAG = "lifecycle/dry_run"
PREVIEW_ROWS = 20
"""Rows of a dry run's preview shown in the metadata and printed; sync_log holds all of them."""
REJECTION_ROWS = 20


@dataclass(frozen=True)
class Activation:
    """One sync: its asset key, the dbt model it reads, the assets it must follow, and its destination."""

    key: tuple[str, str]
    source: SyncObject
    after: tuple[tuple[str, str], ...]
    destination: Callable[[Settings, duckdb.DuckDBPyConnection], Adapter]


def _hubspot(settings: Settings) -> HubSpotClient:
    return HubSpotClient(settings.hubspot_token.reveal(), settings.hubspot_base_url)


def _brevo(settings: Settings) -> BrevoClient:
    return BrevoClient(settings.brevo_api_key.reveal(), settings.brevo_base_url)


ACTIVATIONS = (
    Activation(("hubspot", "contacts"), CRM_CONTACTS, (),
               lambda settings, con: HubSpotContacts(_hubspot(settings))),
    Activation(("hubspot", "notes"), CRM_NOTES, (("hubspot", "contacts"),),
               lambda settings, con: HubSpotNotes(_hubspot(settings),
                                                  maybe_applied_keys(con, "hubspot", "notes"))),
    Activation(("brevo", "contacts"), MARKETING_CONTACTS, (),
               lambda settings, con: BrevoContacts(_brevo(settings))),
    Activation(("brevo", "list_members"), MARKETING_LIST_MEMBERS, (("brevo", "contacts"),),
               lambda settings, con: BrevoListMembers(_brevo(settings))),
)


def is_dry_run(tags: dict[str, str]) -> bool:
    return tags.get(DRY_RUN_TAG, "").strip().lower() in ("true", "1", "yes")


def preview_lines(result: SyncResult, limit: int = PREVIEW_ROWS) -> list[str]:
    """One line per row sent (or that a dry run would send): action, key and the fields written."""
    lines = [f"{change.action} {change.key} {json.dumps(dict(change.fields), sort_keys=True, default=str)}"
             for change in result.preview[:limit]]
    if result.changed > len(lines):
        more = result.changed - len(lines)
        lines.append(f"... and {more} more (activations.sync_log, run {result.run_id})")
    return lines


def materialization_metadata(result: SyncResult) -> dict[str, Any]:
    """The engine's numbers, plus a sample of the rejections and the preview, as Dagster metadata."""
    metadata: dict[str, Any] = dict(result.metadata())
    metadata["api_calls"] = dg.MetadataValue.json(result.api_calls)
    metadata["rejection_reasons"] = dg.MetadataValue.json(dict(result.rejection_reasons))
    metadata["rejections"] = dg.MetadataValue.json(
        [{"key": outcome.key, "reason": outcome.reason} for outcome in result.rejections[:REJECTION_ROWS]])
    metadata["preview"] = dg.MetadataValue.text("\n".join(preview_lines(result)))
    return metadata


def _activation_asset(activation: Activation) -> dg.AssetsDefinition:
    destination, object_ = activation.key
    model_key = dg.AssetKey(["sync", activation.source.model.split(".")[-1]])

    @dg.asset(
        key=dg.AssetKey(list(activation.key)),
        deps=[model_key, *(dg.AssetKey(list(key)) for key in activation.after)],
        group_name=ACTIVATE_GROUP,
        pool=WAREHOUSE_POOL,
        description=f"Sync {activation.source.model} to {destination} {object_.replace('_', ' ')}: only adds "
                    "and changed fields are sent.",
    )
    def activate(context: AssetExecutionContext, lifecycle: LifecycleSettings) -> dg.MaterializeResult:
        settings = lifecycle.settings()
        dry_run = is_dry_run(context.run.tags)
        with duckdb.connect(str(settings.warehouse_path)) as con:
            target = activation.destination(settings, con)
            try:
                result = sync(con, activation.source, target, dry_run=dry_run)
            finally:
                target.client.close()
        context.log.info(f"{destination} {object_}{' (dry run)' if dry_run else ''}: {result.changed} of "
                         f"{result.considered} rows changed, {result.sent} sent, {result.rejected} rejected")
        for line in preview_lines(result) if dry_run else []:
            context.log.info(f"{destination} {object_} dry run: {line}")
        if result.rejected:
            context.log.warning(f"{destination} {object_}: {result.rejected} rows rejected "
                                f"({dict(result.rejection_reasons)}); they are retried next run")
        return dg.MaterializeResult(metadata=materialization_metadata(result))

    return activate


def build_definitions() -> dg.Definitions:
    assets = [_activation_asset(activation) for activation in ACTIVATIONS]
    activate_job = dg.define_asset_job(
        "activate",
        selection=dg.AssetSelection.groups(ACTIVATE_GROUP),
        description="Sync the dbt sync models to HubSpot and Brevo (contacts first, then notes and list "
                    f"members). Tag a run `{DRY_RUN_TAG}=true` to report the changes without writing them.",
        executor_def=dg.in_process_executor,
    )
    return dg.Definitions(assets=assets, jobs=[activate_job])
