"""The one place where Dagster resources are built: everything comes from the environment (SPEC §5.1)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from dagster_dlt import DagsterDltResource

from ingestion.pipelines import IngestionConfig
from orchestration.settings import Secret, Settings, secret_values


class LifecycleSettings(dg.ConfigurableResource):
    """Reads the environment (and ``.env``) when a run starts, so a changed credential needs no reload."""

    def settings(self) -> Settings:
        return Settings.from_env()


def ingestion_config(settings: Settings, *, with_credentials: bool = True) -> IngestionConfig:
    """What the dlt sources need. Without credentials: for building asset definitions, which must not hold
    secrets (they end up in asset metadata shown in the UI)."""

    def secret(value: Secret) -> str:
        return value.reveal() if with_credentials else "placeholder"

    return IngestionConfig(
        warehouse_path=settings.warehouse_path,
        pipelines_dir=settings.dlt_pipelines_dir,
        landing_dir=settings.landing_dir,
        hubspot_base_url=settings.hubspot_base_url,
        hubspot_token=secret(settings.hubspot_token),
        brevo_base_url=settings.brevo_base_url,
        brevo_api_key=secret(settings.brevo_api_key),
        calendly_base_url=settings.calendly_base_url,
        calendly_token=secret(settings.calendly_token),
        stripe_base_url=settings.stripe_base_url,
        stripe_api_key=secret(settings.stripe_api_key),
        mask=secret_values(settings) if with_credentials else (),
    )


DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"

def _dbt_executable() -> str:
    """This interpreter's dbt, named explicitly: a virtualenv's bin/ is often not on PATH (``make test``, cron)."""
    beside_python = Path(sys.executable).parent / "dbt"
    return str(beside_python) if beside_python.exists() else shutil.which("dbt") or "dbt"


DBT_EXECUTABLE = _dbt_executable()

RESOURCES = {
    "lifecycle": LifecycleSettings(),
    "dlt": DagsterDltResource(),
    # profiles.yml is committed next to the project and reads LIFECYCLE_HOME (see orchestration/defs/transform.py)
    "dbt": DbtCliResource(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR),
                          dbt_executable=DBT_EXECUTABLE),
}
