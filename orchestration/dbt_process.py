"""dbt as a process: the project's manifest (parsed when the project changed), the environment a build
runs in (the warehouse folder, the as-of moment, the memory limit), the rebuild of what the send ledger
feeds (inside the run's process, on a warehouse it shares with the activations), and stopping dbt so that
it never outlives its step. The assets that run dbt are in
orchestration/defs/transform.py.
"""

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
from dagster_dbt import DbtProject
from filelock import FileLock

from activations.state import migrate
from orchestration import builds
from orchestration.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR
from settings import Settings

DBT_STOP_GRACE_SECONDS = 30.0
MANIFEST_INPUTS = ("dbt_project.yml", "profiles.yml", "models", "macros", "seeds", "tests")
"""What a parse reads; the manifest is rebuilt when any of it is newer."""


DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
BUILD_DEFINITION = (DBT_PROJECT.manifest_path, DBT_PROJECT.project_dir / "dbt_project.yml")
"""What the models compute, besides the data and the as-of: the parsed project (models, macros, seeds) and the
project file, whose vars the manifest does not carry."""


def manifest_is_current(project: DbtProject) -> bool:
    if not project.manifest_path.exists():
        return False
    built = project.manifest_path.stat().st_mtime
    for name in MANIFEST_INPUTS:
        path = project.project_dir / name
        paths = path.rglob("*") if path.is_dir() else [path]
        if any(p.stat().st_mtime > built for p in paths if p.is_file()):
            return False
    return True


def prepare_manifest(project: DbtProject = DBT_PROJECT) -> Path:
    """``target/manifest.json``, parsed (``dbt parse``, ~5 s) when missing or older than the project.

    Instead of ``DbtProject.prepare_if_dev``, which only acts under ``dagster dev``: this also serves
    ``lifecycle run``, the tests and a fresh clone, and names the virtualenv's dbt (often not on PATH). The parse writes into a scratch folder and the files are
    moved into place, so another process loading the definitions never reads a half-written manifest;
    the lock keeps two processes from parsing at once.
    """
    manifest = project.manifest_path
    target = manifest.parent
    if manifest_is_current(project):
        return manifest
    target.mkdir(exist_ok=True)
    with FileLock(target / "manifest.lock"):
        if manifest_is_current(project):
            return manifest
        with tempfile.TemporaryDirectory(dir=target, prefix="parse-") as scratch:
            partial_parse = target / "partial_parse.msgpack"
            if partial_parse.exists():
                (Path(scratch) / partial_parse.name).write_bytes(partial_parse.read_bytes())
            completed = subprocess.run(
                [DBT_EXECUTABLE, "parse", "--quiet", "--project-dir", str(project.project_dir),
                 "--profiles-dir", str(project.profiles_dir), "--target-path", scratch, "--log-path", scratch],
                check=False, capture_output=True, text=True,
                env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
            )
            if completed.returncode != 0:
                raise RuntimeError(f"dbt parse failed:\n{(completed.stdout + completed.stderr)[-4000:]}")
            os.replace(Path(scratch) / partial_parse.name, partial_parse)
            os.replace(Path(scratch) / manifest.name, manifest)
    return manifest



def stop_dbt(process: subprocess.Popen, grace_seconds: float = DBT_STOP_GRACE_SECONDS) -> None:
    """dbt must not outlive its step: it holds the warehouse's write lock, and the next run would fail on it.
    dagster-dbt forwards Dagster's own interrupts; anything else that ends the step early (an exception, a
    harness's timeout) lands here. dbt gets SIGINT (it rolls back and exits), then SIGKILL after the grace."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Set these environment variables for the block (the dbt process started in it inherits them)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


DBT_BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]
"""Models, seeds and data tests. Unit tests check the SQL, not the data: they run in the test suite
(``dbt test --select test_type:unit``), and they need the raw tables, which a fresh warehouse lacks."""


def dbt_target_path(settings: Settings) -> Path:
    """One artifacts folder per warehouse, reused run after run (dbt's partial parse is kept there too)."""
    return settings.data_dir / "dbt" / "target"


def build_record_dir(settings: Settings) -> Path:
    return settings.data_dir / "dbt"


def dbt_environment(settings: Settings, as_of: str | None) -> contextlib.AbstractContextManager[None]:
    """profiles.yml reads LIFECYCLE_HOME (the folder of warehouse.duckdb), relative to where dbt runs
    (dbt_project/): dbt gets the resolved folder, a dry run's scratch copy included. The as-of moment goes in
    LIFECYCLE_AS_OF rather than ``--vars``, which would make dbt parse the whole project again (about 10 s).
    The memory limit goes in as validated by the settings."""
    return environment(LIFECYCLE_HOME=str(settings.data_dir), LIFECYCLE_AS_OF=as_of or "",
                       LIFECYCLE_DUCKDB_MEMORY_LIMIT=settings.duckdb_memory_limit)


def prepare_activation_tables(settings: Settings) -> None:
    """Create the tables the activations own and dbt reads, or migrate them from an older layout."""
    with duckdb.connect(str(settings.warehouse_path), config=settings.duckdb_config) as con:
        migrate(con)


def shared_warehouse(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse that dbt, run in this process (``rebuild_after_sends``), shares: DuckDB
    shares a database between the connections of one process only when they were opened with the same
    settings, and dbt-duckdb opens it with none, then applies profiles.yml's. So this one is opened with
    none too, then given the memory limit, which holds for the whole database."""
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute(f"set memory_limit = '{settings.duckdb_memory_limit}'")
    return con


class RebuildFailed(RuntimeError):
    """The rebuild after the sends did not complete; the message is dbt's first error."""


def rebuild_after_sends(settings: Settings, as_of: str | None) -> None:
    """Rebuild the models that read the send ledger (``builds.SETTLE_SELECTION``), without their tests.

    dbt runs in this process, not as a process of its own: the HubSpot half of the activations may be writing
    the warehouse meanwhile (through ``shared_warehouse``), and DuckDB lets one process at a time open a
    database file for writing.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.cli.main import dbtRunner

    target = dbt_target_path(settings)
    args = ["build", "--select", builds.SETTLE_SELECTION, "--exclude-resource-type", "test",
            "--exclude-resource-type", "unit_test", "--project-dir", str(DBT_PROJECT.project_dir),
            "--profiles-dir", str(DBT_PROJECT.profiles_dir), "--target-path", str(target), "--log-path", str(target),
            "--quiet", "--no-send-anonymous-usage-stats"]
    try:
        with dbt_environment(settings, as_of):
            outcome = dbtRunner().invoke(args)
    finally:
        # dbt-duckdb keeps its database open for the next invocation in this process. Dropping it here closes
        # it, so that the next run's dbt process (or a read-only connection) can open the file.
        DuckDBConnectionManager.close_all_connections()
    if outcome.success:
        return
    errors = [result.message for result in getattr(outcome.result, "results", None) or []
              if result.status in ("error", "fail") and result.message]
    cause = errors[0] if errors else str(outcome.exception or "dbt reported a failure")
    raise RebuildFailed(cause.splitlines()[0]) from outcome.exception
