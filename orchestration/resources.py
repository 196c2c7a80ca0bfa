"""The one place where Dagster resources are built: everything comes from the environment (docs/interfaces.md#command-line-and-settings)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource
from dagster_dlt import DagsterDltResource
from packaging import version
from pydantic import PrivateAttr

from activations.destinations import brevo_written_contacts_sql, hubspot_written_contacts_sql
from orchestration.preflight import Refused, check_access, check_settings
from settings import Settings

DRY_RUN_TAG = "lifecycle/dry_run"
REPLAY_TAG = "lifecycle/replay"
SCRATCH_DIR = "scratch"
"""Under ``$LIFECYCLE_HOME``: the dry runs' copies of the warehouse and the dlt state, each removed when its
run ends (one left behind by a killed process can be deleted)."""


def tag_is_set(tags: Mapping[str, str], name: str) -> bool:
    return tags.get(name, "").strip().lower() in ("true", "1", "yes")


@contextlib.contextmanager
def refusal_as_failure() -> Iterator[None]:
    """A refused check fails the step with its one line as the error, and no retry."""
    try:
        yield
    except Refused as refusal:
        raise dg.Failure(description=str(refusal), allow_retries=False) from refusal


def scratch_copy(settings: Settings, *, prefix: str = "dry-run-", dlt_state: bool = True) -> Path:
    """A scratch copy of the warehouse (and the dlt state), for a dry run to ingest, build and record into, or a
    backtest (orchestration/backtest.py) to replay in.

    Copied while a read-only connection is open: DuckDB keeps writers out meanwhile, so a run writing the
    warehouse makes this fail with DuckDB's lock error rather than copy a half-written file. The landing zone
    is not copied: ingestion only reads it, and its read offsets are part of the dlt state.
    """
    root = settings.home / SCRATCH_DIR
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    warehouse = settings.warehouse_path
    with contextlib.ExitStack() as stack:
        if warehouse.exists():
            stack.enter_context(duckdb.connect(str(warehouse), read_only=True))
            for path in (warehouse, warehouse.with_name(f"{warehouse.name}.wal")):
                if path.exists():
                    shutil.copyfile(path, scratch / path.name)
        if dlt_state and settings.dlt_pipelines_dir.exists():
            shutil.copytree(settings.dlt_pipelines_dir, scratch / settings.dlt_pipelines_dir.name)
    return scratch


class LifecycleSettings(dg.ConfigurableResource):
    """Reads the environment (and ``.env``) when a run starts, so a changed credential needs no reload.

    A dry run (tagged ``lifecycle/dry_run=true``, from ``lifecycle run --dry-run`` or the UI) gets settings
    whose warehouse and dlt state are a scratch copy, made when a step first asks and deleted when the run
    ends: what it ingests, builds and records there is thrown away, so nothing a later real run reads changes.
    """

    _dry_run: bool = PrivateAttr(default=False)
    _scratch: Path | None = PrivateAttr(default=None)
    _accessible: set[str] = PrivateAttr(default_factory=set)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._dry_run = context.run is not None and tag_is_set(context.run.tags, DRY_RUN_TAG)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def settings(self) -> Settings:
        settings = Settings.from_env()
        if not self._dry_run:
            return settings
        if self._scratch is None:
            self._scratch = scratch_copy(settings)
        return replace(settings, scratch=self._scratch)

    def require(self, *vendors: str) -> Settings:
        """The settings, once these vendors' variables are set and their credentials accepted (each vendor
        is asked once per run); otherwise the step fails with the one line that says what to fix."""
        settings = Settings.from_env()
        with refusal_as_failure():
            check_settings(settings, vendors)
            for vendor in vendors:
                if vendor not in self._accessible:
                    check_access(settings, vendor)
                    self._accessible.add(vendor)
        return self.settings()


OWN_WRITES = {"crm": hubspot_written_contacts_sql(), "marketing": brevo_written_contacts_sql()}
"""What the syncs last wrote to HubSpot's and Brevo's contacts, for ingestion to recognise those writes when
the vendors return them (ingestion/echoes.py)."""


DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"

def _dbt_executable() -> str:
    """This interpreter's dbt, named explicitly: a virtualenv's bin/ is often not on PATH (``make test``, cron)."""
    beside_python = Path(sys.executable).parent / "dbt"
    return str(beside_python) if beside_python.exists() else shutil.which("dbt") or "dbt"


DBT_EXECUTABLE = _dbt_executable()


class DbtCli(DbtCliResource):
    """dagster-dbt's dbt resource without two steps it takes before every dbt command, about 5 s of each run:
    running ``dbt --version`` in a subprocess (the dbt-core installed with us, which runs, is pinned), and
    opening a dbt adapter in this process, which only serves metadata fetches we do not make. Both methods
    are dagster-dbt's private ones; ``tests/orchestration/test_dbt_resource.py`` fails if they move."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


RESOURCES = {
    "lifecycle": LifecycleSettings(),
    "dlt": DagsterDltResource(),
    # profiles.yml is committed next to the project and reads LIFECYCLE_HOME (see orchestration/defs/transform.py)
    "dbt": DbtCli(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=DBT_EXECUTABLE),
}
