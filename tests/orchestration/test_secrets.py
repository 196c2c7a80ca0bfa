"""No credential leaves the pipeline: the whole of it, run as real processes against a vendor that echoes
credentials, leaves none of its recognisable fake secrets anywhere we can look.

The sandbox and the collector are started with fake secrets that all carry the marker ``LEAKCANARY``, the
webhooks are registered and a small world is generated; then the sandbox turns careless (every error answer
repeats the credential the request presented) and injects 429s and 500s, so that retries happen.
``lifecycle run`` ingests with wrong credentials (every REST source fails on a 401), then with the right
ones, transforms, activates with wrong HubSpot and Brevo credentials (401s again), then with the right ones.
Then the marker is searched for in every process's stdout and stderr and in the job logs each run left, in
every file under LIFECYCLE_HOME (gzip members unpacked, parquet files read), in every event log entry and
run record of Dagster's instance, and in every column of every table of the warehouse (queried: DuckDB
compresses strings, and dlt keeps its state compressed). It must be nowhere.

``LIFECYCLE_TEST_SECRETS_CONTACTS`` (default 40) sets the size of the world.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pyarrow.parquet as pq
import pytest
from dlt.common.versioned_state import decompress_state

from orchestration.services import free_port, stop, wait_healthy
from settings import sandbox_environment

MARKER = "LEAKCANARY"
SECRETS = {
    "HUBSPOT_TOKEN": f"pat-{MARKER}-hubspot-7f3a",
    "BREVO_API_KEY": f"xkeysib-{MARKER}-brevo-91c2",
    "CALENDLY_TOKEN": f"{MARKER}-calendly-token-5d0e",
    "CALENDLY_WEBHOOK_SIGNING_KEY": f"{MARKER}-calendly-signing-2b8c",
    "STRIPE_API_KEY": f"sk_test_{MARKER}_stripe_64ad",
    "STRIPE_WEBHOOK_SECRET": f"whsec_{MARKER}_stripe_e1f7",
}
WRONG = {
    "HUBSPOT_TOKEN": f"pat-{MARKER}-wrong-hubspot-0b3e",
    "BREVO_API_KEY": f"xkeysib-{MARKER}-wrong-brevo-c4d9",
    "CALENDLY_TOKEN": f"{MARKER}-wrong-calendly-8a21",
    "STRIPE_API_KEY": f"sk_test_{MARKER}_wrong_stripe_77f0",
}
"""Credentials the sandbox refuses: each vendor answers 401, echoing them."""
CONTACTS = int(os.environ.get("LIFECYCLE_TEST_SECRETS_CONTACTS", "40"))
FAULTS = {"rate_429": 0.1, "rate_500": 0.05, "seed": 11}


def clean_environment() -> dict[str, str]:
    """This process's environment without any configuration of ours (a developer's real token included)."""
    ours = {*sandbox_environment("", Path()), "DAGSTER_HOME"}
    return {name: value for name, value in os.environ.items() if name not in ours}


@contextmanager
def service(args: list[str], health_url: str, env: dict[str, str], outputs: Path, name: str) -> Iterator[None]:
    with open(outputs / f"{name}.out", "w") as stdout, open(outputs / f"{name}.err", "w") as stderr:
        process = subprocess.Popen(args, env=env, cwd=outputs, stdout=stdout, stderr=stderr)
        try:
            wait_healthy(health_url, process)
            yield
        finally:
            stop(process, timeout=30)


def run_cli(outputs: Path, name: str, env: dict[str, str], *args: str) -> int:
    with open(outputs / f"{name}.out", "w") as stdout, open(outputs / f"{name}.err", "w") as stderr:
        return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env=env, cwd=outputs,
                              stdout=stdout, stderr=stderr, timeout=900, check=False).returncode


def run_pipeline(outputs: Path, home: Path, name: str, env: dict[str, str], *select: str) -> int:
    """``lifecycle run --select ...``; the job logs it leaves are kept, as the next run of the job replaces them."""
    code = run_cli(outputs, name, env, "run", "--select", *select)
    shutil.copytree(home / "logs", outputs / f"{name}-logs")
    return code


def file_texts(path: Path) -> Iterator[str]:
    """A file's bytes as text, unpacked when gzip-compressed, and a parquet file's every value."""
    data = path.read_bytes()
    yield data.decode("utf-8", errors="replace")
    if data[:2] == b"\x1f\x8b":
        yield gzip.decompress(data).decode("utf-8", errors="replace")
    if data[:4] == b"PAR1":
        yield repr(pq.read_table(path).to_pylist())


def files_showing(root: Path) -> list[str]:
    return sorted(str(path) for path in root.rglob("*")
                  if path.is_file() and any(MARKER in text for text in file_texts(path)))


def dagster_records_showing(dagster_home: Path) -> list[str]:
    """Every event log entry (messages, errors, materialization and check metadata) and run record."""
    found = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records()
        assert records, "the runs are in the instance"
        for record in records:
            if MARKER in dg.serialize_value(record.dagster_run):
                found.append(f"run {record.dagster_run.run_id}")
            found += [f"event {entry.run_id} {entry.dagster_event_type or 'log message'}"
                      for entry in instance.all_logs(record.dagster_run.run_id)
                      if MARKER in dg.serialize_value(entry)]
    return found


def warehouse_cells_showing(warehouse: Path) -> list[str]:
    """Every column of every table, cast to text and searched in SQL; dlt's compressed state unpacked."""
    found = []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
        assert len(tables) > 20, "the warehouse was built"
        for schema, table in tables:
            columns = [name for (name,) in con.execute(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
                [schema, table]).fetchall()]
            for column in columns:
                hits = con.execute(f'select count(*) from "{schema}"."{table}" '
                                   f'where contains(cast("{column}" as varchar), ?)', [MARKER]).fetchone()[0]
                if hits:
                    found.append(f"{schema}.{table}.{column}")
            if table == "_dlt_pipeline_state":
                states = con.execute(f'select state from "{schema}"."{table}"').fetchall()
                found += [f"{schema}.{table} (unpacked)" for (state,) in states
                          if MARKER in repr(decompress_state(state))]
    return found


@pytest.mark.timeout(1800)
def test_no_secret_reaches_output_files_dagster_or_the_warehouse(tmp_path: Path) -> None:
    home, outputs = tmp_path / "home", tmp_path / "outputs"
    outputs.mkdir()
    sandbox_port, collector_port = free_port(), free_port()
    sandbox_url, collector_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{collector_port}"
    env = {**clean_environment(), **sandbox_environment(sandbox_url, home), **SECRETS}
    admin = f"{sandbox_url}/_sandbox"

    with service([sys.executable, "-m", "sandbox", "serve", "--port", str(sandbox_port)],
                 f"{sandbox_url}/healthz", env, outputs, "sandbox"), \
            service([sys.executable, "-m", "orchestration.cli", "collector", "--port", str(collector_port)],
                    f"{collector_url}/healthz", env, outputs, "collector"):
        httpx.post(f"{admin}/limits", json={"off": True}).raise_for_status()
        assert run_cli(outputs, "webhooks", env, "webhooks", "register", "--url", collector_url) == 0
        assert run_cli(outputs, "world", env, "world", "--contacts", str(CONTACTS), "--seed", "5",
                       "--sandbox-url", sandbox_url) == 0
        httpx.post(f"{admin}/echo_credentials", json={"on": True}).raise_for_status()
        httpx.post(f"{admin}/faults", json=FAULTS).raise_for_status()

        exits = {name: run_pipeline(outputs, home, name, run_env, *select) for name, run_env, select in (
            ("ingest-wrong", {**env, **WRONG}, ["ingest"]),
            ("ingest", env, ["ingest"]),
            ("transform", env, ["transform", "--skip-dbt-tests"]),
            ("activate-wrong", {**env, **WRONG}, ["activate"]),
            ("activate", env, ["activate"]),
        )}
        echoed = {name: state["echoed"] for name, state in httpx.get(f"{admin}/echo_credentials").json().items()}
        webhooks = httpx.get(f"{admin}/webhooks").json()

    assert exits == {"ingest-wrong": 2, "ingest": 0, "transform": 0, "activate-wrong": 2, "activate": 0}, \
        "wrong credentials are refused by the pre-run check (exit 2), the vendor's echoing answer in its line"
    assert all(count > 0 for count in echoed.values()), f"every vendor echoed a credential: {echoed}"
    assert {d["service"] for d in webhooks if d["status"] == "delivered"} == {"calendly", "stripe"}, \
        "the collector accepted the world's webhooks, signed with the fake signing secrets"
    assert files_showing(outputs) == []
    assert files_showing(home) == []
    assert dagster_records_showing(home / "dagster") == []
    assert warehouse_cells_showing(home / "warehouse.duckdb") == []
