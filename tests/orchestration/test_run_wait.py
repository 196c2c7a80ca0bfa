"""``lifecycle run`` waits its turn: it says what it waits for, stops on SIGTERM and Ctrl-C, and gives up after
``LIFECYCLE_RUN_WAIT_SECONDS``, leaving no run behind.

Real processes: the test process plays the other party (a live run of the instance, tagged with the test's
own process, that holds the warehouse pool slot; or a DuckDB connection that holds the warehouse), and
``lifecycle run`` runs as a subprocess against it. No sandbox is needed: the waiting run never starts.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration import jobs
from orchestration.defs.ingest import WAREHOUSE_POOL
from orchestration.liveness import HOST_TAG, PID_TAG, PROCESS_STARTED_TAG, process_tags
from tests.orchestration.stand_ins import lifecycle_stand_in

REPO_ROOT = Path(__file__).resolve().parents[2]
LINE_SECONDS = 180
"""How long the test waits for the waiting line (a generous bound for a loaded machine, not a measure)."""


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text(jobs.DAGSTER_INSTANCE_YAML)
    return tmp_path


@pytest.fixture()
def instance(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(home / "dagster")) as dagster_instance:
        yield dagster_instance


class Waiter:
    """``lifecycle run --select transform`` (a job that needs no vendor credentials, so nothing is checked
    before the wait) in a subprocess, its stderr read line by line as it comes."""

    def __init__(self, home: Path, **env: str) -> None:
        environment = {**os.environ, "LIFECYCLE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestration.cli", "run", "--select", "transform"], cwd=REPO_ROOT,
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line_with(self, text: str) -> str:
        deadline = time.monotonic() + LINE_SECONDS
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return line
        pytest.fail(f"no line with {text!r} on stderr; got:\n" + "\n".join(self.seen))

    def finish(self) -> tuple[int, str]:
        """Exit code and the rest of stderr; the process is killed if it does not exit by itself."""
        try:
            self.process.wait(timeout=LINE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            pytest.fail("`lifecycle run` did not exit: " + "\n".join(self.seen))
        rest = []
        while (line := self.lines.get(timeout=LINE_SECONDS)) is not None:
            rest.append(line)
        return self.process.returncode, "\n".join(rest)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def live_run_holding_the_pool(instance: dg.DagsterInstance, tags: dict[str, str]) -> dg.DagsterRun:
    run = instance.create_run_for_job(lifecycle_stand_in, status=dg.DagsterRunStatus.STARTED, tags=tags)
    instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
    claim = instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, run.run_id, "ingest_forms")
    assert claim.is_claimed
    return run


def runs_besides(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    return [other.run_id for other in instance.get_runs() if other.run_id != run.run_id]


@pytest.mark.timeout(3 * LINE_SECONDS)
def test_a_waiting_run_says_for_what_and_stops_on_sigterm(home: Path, instance: dg.DagsterInstance) -> None:
    live = live_run_holding_the_pool(instance, process_tags())
    waiter = Waiter(home)
    try:
        line = waiter.line_with("waiting for")
        assert f"run {live.run_id} (job lifecycle, started since " in line
        assert f"pid {os.getpid()} on " in line
        waiter.process.send_signal(signal.SIGTERM)
        code, rest = waiter.finish()
    finally:
        waiter.stop()

    assert code == 128 + signal.SIGTERM
    assert f"stopped by SIGTERM while waiting for run {live.run_id}" in rest and "nothing was started" in rest
    assert runs_besides(instance, live) == [], "the waiting process created no run"
    live_now = instance.get_run_by_id(live.run_id)
    assert live_now is not None and live_now.status == dg.DagsterRunStatus.STARTED, "a live run is left alone"
    assert live.run_id in instance.event_log_storage.get_concurrency_run_ids()


@pytest.mark.timeout(3 * LINE_SECONDS)
def test_a_run_on_another_host_is_waited_for_and_the_wait_gives_up(
        home: Path, instance: dg.DagsterInstance) -> None:
    # A pid that exists nowhere: were the host ignored, the run would be judged dead.
    elsewhere = {HOST_TAG: "another-host.example", PID_TAG: "4194304", PROCESS_STARTED_TAG: "1.0"}
    other = live_run_holding_the_pool(instance, elsewhere)
    waiter = Waiter(home, LIFECYCLE_RUN_WAIT_SECONDS="2")
    try:
        waiter.line_with(f"waiting for run {other.run_id}")
        code, rest = waiter.finish()
    finally:
        waiter.stop()

    assert code == 1
    assert f"gave up after 2 s waiting for run {other.run_id}" in rest
    assert "pid 4194304 on another-host.example" in rest and "LIFECYCLE_RUN_WAIT_SECONDS" in rest
    assert runs_besides(instance, other) == []
    other_now = instance.get_run_by_id(other.run_id)
    assert other_now is not None and other_now.status == dg.DagsterRunStatus.STARTED


@pytest.mark.timeout(3 * LINE_SECONDS)
def test_a_run_waits_for_the_warehouse_lock_and_stops_on_ctrl_c(home: Path, instance: dg.DagsterInstance) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")):
        waiter = Waiter(home)
        try:
            line = waiter.line_with("waiting for")
            assert "another process to close the warehouse" in line and f"PID {os.getpid()}" in line
            waiter.process.send_signal(signal.SIGINT)
            code, rest = waiter.finish()
        finally:
            waiter.stop()

    assert code == 128 + signal.SIGINT
    assert "stopped by SIGINT while waiting for another process to close the warehouse" in rest
    assert instance.get_runs() == []


def test_the_instance_yaml_written_by_lifecycle_is_kept_current_and_an_edited_one_is_left_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    from settings import Settings

    config = tmp_path / "dagster" / "dagster.yaml"
    config.parent.mkdir()
    config.write_text("# Written by `lifecycle`. An older version.\ntelemetry:\n  enabled: false\n")
    jobs.use_dagster_home(Settings.from_env())
    assert config.read_text() == jobs.DAGSTER_INSTANCE_YAML
    assert "LivenessRunLauncher" in config.read_text() and "run_monitoring" in config.read_text()

    edited = "telemetry:\n  enabled: false\n"
    config.write_text(edited)
    jobs.use_dagster_home(Settings.from_env())
    assert config.read_text() == edited
