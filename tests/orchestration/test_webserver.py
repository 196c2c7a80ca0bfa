"""``dagster dev -w workspace.yaml`` as an operator starts it: through the webserver's GraphQL API, the dlt, dbt
and activation assets form one connected graph, the schedule and sensor are there (off), and a ``lifecycle``
run launched from it (queued, then started by the daemon) succeeds on an empty warehouse."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestration.jobs import DAGSTER_INSTANCE_YAML
from orchestration.services import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_START_SECONDS = 120
LOCATION_LOAD_SECONDS = 240
RUN_SECONDS = 540
SHUTDOWN_SECONDS = 30

WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation {
            name
            repositories {
              name
              schedules { name scheduleState { status } }
              sensors { name minIntervalSeconds sensorState { status } }
            }
          }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""
ASSET_NODES_QUERY = "query { assetNodes { assetKey { path } dependencyKeys { path } groupName kinds } }"
LAUNCH_RUN_MUTATION = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""
RUN_QUERY = """
query($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status tags { key value } }
    ... on Error { message }
  }
}
"""
RUN_ERRORS_QUERY = """
query($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message level stepKey }
        ... on ErrorEvent { error { message stack } }
      }
    }
  }
}
"""


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the whole group (webserver, daemon, code server, run workers), SIGKILL what is left."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=SHUTDOWN_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=SHUTDOWN_SECONDS)


@pytest.fixture()
def dagster_dev(tmp_path: Path, sandbox_url: str) -> Iterator[tuple[httpx.Client, Path]]:
    """A ``dagster dev`` on a free port, with a fresh LIFECYCLE_HOME pointed at the session sandbox."""
    from settings import sandbox_environment

    httpx.post(sandbox_url + "/_sandbox/limits", json={"off": True}).raise_for_status()
    home = tmp_path / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_INSTANCE_YAML)
    env = {**os.environ, **sandbox_environment(sandbox_url, home), "DAGSTER_HOME": str(dagster_home)}
    port = free_port()
    log_path = tmp_path / "dagster-dev.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-p", str(port), "-h", "127.0.0.1"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            wait_for_server(client, process, log_path)
            yield client, log_path
    finally:
        stop_process_group(process)


def log_tail(log_path: Path, chars: int = 4000) -> str:
    return log_path.read_text(errors="replace")[-chars:]


def wait_for_server(client: httpx.Client, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster dev exited with {process.returncode}:\n{log_tail(log_path)}")
        try:
            if client.get("/server_info").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"dagster dev did not answer /server_info within {SERVER_START_SECONDS} s:\n{log_tail(log_path)}")


def graphql(client: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables or {}})
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def loaded_location(client: httpx.Client, log_path: Path) -> dict[str, Any]:
    """The workspace's one code location, once loaded (the webserver answers before its code server does)."""
    deadline = time.monotonic() + LOCATION_LOAD_SECONDS
    while time.monotonic() < deadline:
        workspace = graphql(client, WORKSPACE_QUERY)["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace
        (entry,) = workspace["locationEntries"]
        location = entry["locationOrLoadError"]
        if location and location["__typename"] == "PythonError":
            pytest.fail(f"the code location failed to load: {location['message']}\n{location['stack']}")
        if entry["loadStatus"] == "LOADED" and location:
            return location
        time.sleep(1)
    pytest.fail(f"the code location did not load within {LOCATION_LOAD_SECONDS} s:\n{log_tail(log_path)}")


def ancestors(nodes: dict[str, list[str]], start: str) -> set[str]:
    """Every asset upstream of ``start``, following dependencyKeys."""
    seen: set[str] = set()
    frontier = [start]
    while frontier:
        for parent in nodes[frontier.pop()]:
            if parent not in seen:
                seen.add(parent)
                frontier.append(parent)
    return seen


def run_errors(client: httpx.Client, run_id: str) -> str:
    """The run's error events and messages, for the assertion message of a failed run."""
    logs = graphql(client, RUN_ERRORS_QUERY, {"runId": run_id})["logsForRun"]
    lines = []
    for event in logs.get("events", []):
        error = event.get("error")
        if error or event.get("level") == "ERROR":
            lines.append(f"{event['__typename']} {event.get('stepKey')}: {event.get('message')}")
        if error:
            lines.append(f"{error['message']}{''.join(error.get('stack') or [])[-2000:]}")
    return "\n".join(lines)


@pytest.mark.timeout(SERVER_START_SECONDS + LOCATION_LOAD_SECONDS + RUN_SECONDS + 3 * SHUTDOWN_SECONDS)
def test_webserver_shows_one_connected_graph_and_runs_the_lifecycle_job(
        dagster_dev: tuple[httpx.Client, Path]) -> None:
    client, log_path = dagster_dev
    location = loaded_location(client, log_path)
    (repository,) = location["repositories"]
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
    sensors = {s["name"]: (s["sensorState"]["status"], s["minIntervalSeconds"]) for s in repository["sensors"]}
    assert schedules == {"lifecycle_hourly": "STOPPED", "dbt_tests_daily": "STOPPED"}
    assert sensors == {"landing_zone_sensor": ("STOPPED", 60), "run_alerts": ("RUNNING", 30)}

    nodes = graphql(client, ASSET_NODES_QUERY)["assetNodes"]
    graph = {"/".join(n["assetKey"]["path"]): ["/".join(d["path"]) for d in n["dependencyKeys"]] for n in nodes}
    about = {"/".join(n["assetKey"]["path"]): (n["groupName"], set(n["kinds"])) for n in nodes}
    assert about["raw_forms/submissions"][0] == "ingestion" and "dlt" in about["raw_forms/submissions"][1]
    assert about["marts/dim_contacts"][0] == "transform" and "dbt" in about["marts/dim_contacts"][1]
    assert about["sync/sync_crm__contacts"][0] == "transform"
    assert about["hubspot_contacts_sync"][0] == "activate"
    upstream = ancestors(graph, "hubspot_contacts_sync")
    assert {"sync/sync_crm__contacts", "marts/dim_contacts", "raw_forms/submissions"} <= upstream, upstream
    assert any(key.startswith("staging/") for key in upstream), upstream

    launched = graphql(client, LAUNCH_RUN_MUTATION, {"params": {
        "selector": {"repositoryLocationName": location["name"], "repositoryName": repository["name"],
                     "jobName": "lifecycle"},
        "runConfigData": {},
    }})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline = time.monotonic() + RUN_SECONDS
    status = None
    while time.monotonic() < deadline:
        run = graphql(client, RUN_QUERY, {"runId": run_id})["runOrError"]
        status = run["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    # the instance's launcher tags the run with its host, so a dead run worker can be told from a live one
    assert {"key": "lifecycle/host", "value": socket.gethostname()} in run["tags"]
    assert status == "SUCCESS", (
        f"run {run_id} ended {status}:\n{run_errors(client, run_id)}\n--- dagster dev ---\n{log_tail(log_path)}"
    )
