"""Run liveness: a run whose process died must not hold the warehouse for good.

A run killed without a chance to clean up (SIGKILL, a crash, a lost machine) stays "started" in Dagster's
run storage and keeps its slot of the ``warehouse`` pool, so every later run would wait for it for ever.
Each run therefore records where it executes: ``lifecycle run`` tags its runs with the host, pid and start
time of its process; runs launched by the Dagster daemon or UI are tagged with the host by
``LivenessRunLauncher`` and their pid comes from the run worker's "Started process for run" event. A run
whose process is gone from this host (or whose pid now belongs to a younger process) is marked failed and
its pool slots are freed: by ``lifecycle run`` before it starts, by the schedule and the landing-zone sensor
on every tick, and by Dagster's run monitoring daemon (``check_run_worker_health``). A run on another host
is never judged by a pid, which means nothing here: it is waited for (a waiting ``lifecycle run`` gives up
after its bounded wait) until it ends or an operator terminates it in the UI.

``wait_for_warehouse`` is how ``lifecycle run`` waits its turn: while another run is in flight or holds a
pool slot, another ``lifecycle run`` of this host holds the run lock, or another process holds the
warehouse's DuckDB lock, it says what it waits for and since when, stops at once on SIGTERM or Ctrl-C, and
gives up after a bounded time. It waits before its own run exists, so an interrupted or abandoned wait
leaves no run and no pool claim behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import dagster as dg
import duckdb
import psutil
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

HOST_TAG = "lifecycle/host"
PID_TAG = "lifecycle/pid"
PROCESS_STARTED_TAG = "lifecycle/process_started"
"""The run's process: host name, pid, and its start time (seconds since the epoch), so that a pid reused by
another process after a crash is not mistaken for the run."""
IN_FLIGHT_STATUSES = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
"""A run in any of these may be writing the warehouse, or will soon. NOT_STARTED is left out: a run whose
launch failed can stay in it for good, and would block every later run."""
START_TIME_SLACK_SECONDS = 1.0
"""How far a process's start time may stray from the one recorded (clock resolution)."""
LOCAL_CODE_SERVER_HOSTS = ("localhost", "127.0.0.1", "::1", "")
WAIT_POLL_SECONDS = 1.0
RUN_LOCK_FILE = "run.lock"
"""In ``$LIFECYCLE_HOME``: held by the ``lifecycle run`` whose turn it is, from its last check to its run's end."""
EXIT_ON_SIGNAL = 128
"""A process stopped by a signal exits with 128 + the signal's number (143 for SIGTERM, 130 for SIGINT)."""


def this_host() -> str:
    return socket.gethostname()


def process_tags() -> dict[str, str]:
    """Tags for a run executed by this process: where to look for it, and how to know it is still the same."""
    process = psutil.Process()
    return {HOST_TAG: this_host(), PID_TAG: str(process.pid), PROCESS_STARTED_TAG: repr(process.create_time())}


@dataclass(frozen=True)
class RunProcess:
    """The process that executes a run, and the window its start time must fall in to still be that one."""

    host: str
    pid: int
    started_after: float
    started_before: float

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def is_gone(self) -> bool:
        """True when the process is known to be gone: it ran on this host and no longer exists (or is a
        zombie, or its pid now belongs to a process started outside the window). False when it runs, when
        this host may not look at it, or when it is on another host: a pid means nothing from here."""
        if self.host != this_host():
            return False
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
            started = process.create_time()
        except psutil.NoSuchProcess:
            return True
        except psutil.AccessDenied:
            return False
        return not (self.started_after - START_TIME_SLACK_SECONDS <= started
                    <= self.started_before + START_TIME_SLACK_SECONDS)


def _worker_pid_event(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid and time of the run's first engine event that names its process ("Started process for run")."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = data.metadata.get("pid") if data else None
        if pid is not None:
            return int(pid.value), entry.timestamp
    return None


def run_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> RunProcess | None:
    """Where ``run`` executes, or None when that is not known (a run without our tags, a launched run
    whose worker has not started yet, or tags that do not parse)."""
    host = run.tags.get(HOST_TAG)
    if not host:
        return None
    try:
        if PID_TAG in run.tags:
            started = float(run.tags[PROCESS_STARTED_TAG])
            return RunProcess(host, int(run.tags[PID_TAG]), started, started)
        worker = _worker_pid_event(instance, run.run_id)
    except (KeyError, ValueError):
        return None
    if worker is None:
        return None
    pid, seen_at = worker
    return RunProcess(host, pid, 0.0, seen_at)


def dead_run_message(process: RunProcess, found_by: str) -> str:
    return (f"Found dead by {found_by}: the run's process ({process}) is gone, so the run can never finish. "
            "Marked failed and its pool slots freed, so that later runs can start.")


def _run_holders(instance: dg.DagsterInstance) -> set[str]:
    """Runs that hold a pool slot or wait for one."""
    storage = instance.event_log_storage
    return storage.get_concurrency_run_ids() if storage.supports_global_concurrency_limits else set()


def reap_dead_runs(instance: dg.DagsterInstance, found_by: str) -> list[str]:
    """Mark failed every unfinished run whose process is gone and free its pool slots; free the slots still
    held by runs that are over (unless their process is seen still running). Returns one line per run."""
    reaped = []
    unfinished = instance.get_runs(
        filters=dg.RunsFilter(statuses=[*IN_FLIGHT_STATUSES, dg.DagsterRunStatus.NOT_STARTED]))
    for run in unfinished:
        process = run_process(instance, run)
        if process is not None and process.is_gone():
            instance.report_run_failed(run, dead_run_message(process, found_by))
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            reaped.append(f"run {run.run_id} (job {run.job_name}) was dead ({process}): marked failed, "
                          "its pool slots freed")
    for run_id in _run_holders(instance):
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            continue
        process = run_process(instance, run) if run is not None else None
        if process is not None and process.host == this_host() and not process.is_gone():
            continue
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        reaped.append(f"run {run_id} is over ({run.status.value if run else 'deleted'}): its pool slots freed")
    return reaped


def _since(record: dg.RunRecord) -> str:
    started = record.start_time or record.create_timestamp.timestamp()
    return datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_run(instance: dg.DagsterInstance, record: dg.RunRecord) -> str:
    """``run <id> (job <name>, <status> since <time>, <where>)``: enough to find it in the UI or with ps."""
    run = record.dagster_run
    process = run_process(instance, run)
    where = f"{process}" if process else "process not known here"
    return f"run {run.run_id} (job {run.job_name}, {run.status.value.lower()} since {_since(record)}, {where})"


def run_in_flight(instance: dg.DagsterInstance) -> dg.RunRecord | None:
    """The oldest queued, starting, started or cancelling run of this instance, if there is one."""
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=list(IN_FLIGHT_STATUSES)),
                                       limit=1, ascending=True)
    return records[0] if records else None


def warehouse_lock_holder(warehouse: Path) -> str | None:
    """DuckDB's own words on who holds the warehouse open, if another process does (one writer at a time).
    Any other error opening it is left for the run's steps to report."""
    if not warehouse.exists():
        return None
    try:
        duckdb.connect(str(warehouse)).close()
    except duckdb.IOException as error:
        message = str(error)
        return message.splitlines()[0] if "lock" in message.lower() else None
    return None


class WaitAborted(SystemExit):
    """``lifecycle run`` did not start its run: it was stopped, or gave up, while waiting its turn."""


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT (Ctrl-C) end the wait at once, wherever it sleeps."""

    def stop(signum: int, frame: Any) -> None:
        raise _Stopped(signum)

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals; there they keep their usual effect
        return
    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def run_lock(lock_path: Path) -> Iterator[IO[str]]:
    """The lock that ``lifecycle run`` processes of one host take in turn from their check to their run's end:
    two of them started at once do not both find the warehouse free. The OS drops it when its process dies."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        yield handle


def _try_lock(handle: IO[str]) -> str | None:
    """Take the run lock; None when taken, else who holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        return handle.read().strip() or "another `lifecycle run`"
    handle.seek(0)
    handle.truncate()
    handle.write(f"`lifecycle run` pid {psutil.Process().pid} on {this_host()}")
    handle.flush()
    return None


def _blocker(instance: dg.DagsterInstance, warehouse: Path, lock: IO[str]) -> str | None:
    """What this run has to wait for, in words; None when the warehouse is free and the run lock is taken."""
    record = run_in_flight(instance)
    if record is not None:
        return f"{describe_run(instance, record)} to finish"
    for run_id in sorted(_run_holders(instance)):
        holder = instance.get_run_record_by_id(run_id)
        if holder is not None:
            return f"{describe_run(instance, holder)} to free its warehouse pool slot"
    holder = _try_lock(lock)
    if holder is not None:
        return f"{holder}, which is starting or ending a run"
    locked_by = warehouse_lock_holder(warehouse)
    if locked_by is not None:
        fcntl.flock(lock, fcntl.LOCK_UN)
        return f"another process to close the warehouse ({locked_by})"
    return None


def wait_for_warehouse(instance: dg.DagsterInstance, warehouse: Path, lock: IO[str], timeout_seconds: int,
                       out: IO[str] = sys.stderr) -> None:
    """Return once this process may start a run: dead runs cleaned up, no other run in flight or holding a
    pool slot, no other process holding the warehouse, and the run lock taken. Meanwhile print what it
    waits for (again whenever that changes); raise ``WaitAborted`` on SIGTERM or Ctrl-C (exit 128 + signal)
    or after ``timeout_seconds`` (exit 1), printing one line that says so."""
    started = time.monotonic()
    told = None
    blocker = None
    try:
        with _stop_on_signals():
            while True:
                for line in reap_dead_runs(instance, found_by="`lifecycle run` before starting"):
                    print(line, file=out, flush=True)
                blocker = _blocker(instance, warehouse, lock)
                if blocker is None:
                    return
                waited = time.monotonic() - started
                if waited >= timeout_seconds:
                    print(f"gave up after {timeout_seconds} s waiting for {blocker}; nothing was started "
                          "(the limit is LIFECYCLE_RUN_WAIT_SECONDS; a run that is stuck can be terminated in "
                          "the Dagster UI)", file=out, flush=True)
                    raise WaitAborted(1)
                if blocker != told:
                    print(f"waiting for {blocker} (up to {timeout_seconds} s, LIFECYCLE_RUN_WAIT_SECONDS)",
                          file=out, flush=True)
                    told = blocker
                time.sleep(min(WAIT_POLL_SECONDS, timeout_seconds - waited))
    except _Stopped as stopped:
        name = signal.Signals(stopped.signum).name
        print(f"stopped by {name} while waiting for {blocker or 'the warehouse'}; nothing was started",
              file=out, flush=True)
        raise WaitAborted(EXIT_ON_SIGNAL + stopped.signum) from None


class LivenessRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default launcher (each run in a subprocess of its code server) that also tags each run with
    the host it runs on and tells Dagster's run monitoring when a run's process is gone."""

    def launch_run(self, context: LaunchRunContext) -> None:
        super().launch_run(context)
        run = self._instance.get_run_by_id(context.dagster_run.run_id)
        grpc_info = json.loads(run.tags.get(GRPC_INFO_TAG, "{}")) if run else {}
        server_host = grpc_info.get("host") or ""
        host = this_host() if server_host in LOCAL_CODE_SERVER_HOSTS else server_host
        self._instance.add_run_tags(context.dagster_run.run_id, {HOST_TAG: host})

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        process = run_process(self._instance, run)
        if process is not None and process.is_gone():
            return CheckRunHealthResult(WorkerStatus.FAILED, dead_run_message(process, "run monitoring"))
        # Unknown (another host, no pid yet) counts as running: only a process seen gone is judged dead.
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"{process}" if process else "process not known")
