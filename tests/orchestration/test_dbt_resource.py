"""The dbt resource skips dagster-dbt's two steps before each dbt command (``dbt --version`` in a subprocess,
a dbt adapter in this process), and still runs dbt."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster_dbt import DbtCliResource
from dagster_dbt.core import resource as dagster_dbt_resource

from orchestration.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR, DbtCli


def test_the_skipped_steps_are_still_dagster_dbts_own() -> None:
    """Our overrides only help while dagster-dbt calls these names; a rename would bring the cost back."""
    assert isinstance(DbtCliResource.__dict__["_cli_version"], type(DbtCli.__dict__["_cli_version"]))
    assert callable(DbtCliResource.__dict__["_initialize_dbt_core_adapter"])


def test_dbt_runs_without_asking_its_version_or_opening_an_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_subprocess(*args: object, **kwargs: object) -> bytes:
        raise AssertionError(f"dagster-dbt ran a subprocess before dbt: {args}")

    monkeypatch.setattr(dagster_dbt_resource, "check_output", no_subprocess)
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path))
    dbt = DbtCli(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=DBT_EXECUTABLE)

    invocation = dbt.cli(["ls", "--select", "messages_due", "--output", "name"], target_path=tmp_path / "target")
    invocation.wait()

    assert invocation.is_successful()
    assert invocation.adapter is None
    assert dbt._cli_version.major == 1
    base = DbtCliResource(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR),
                          dbt_executable=DBT_EXECUTABLE)
    with pytest.raises(AssertionError, match="subprocess"):
        _ = base._cli_version  # the step we skip
