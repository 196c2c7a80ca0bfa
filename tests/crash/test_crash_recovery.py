"""Crash suite: a real `lifecycle run` process group is SIGKILLed at seeded random moments inside ingestion,
the dbt build and each activation; then the next run, started as the operator or the schedule would start
it, must converge to exactly what an uninterrupted run produces.

One small synthetic world is prepared once, stage by stage, in one home folder: H0 (the world in the sandbox
and the landing zone), H1 (ingested), H2 (transformed), and the reference end state of each stage (raw
tables after ingestion, marts and sync models after dbt, the destinations and the emails after the
activations). The sandbox keeps a snapshot of the world. A trial restores it and the home of its stage
(same path, so dbt's partial parse is reused), starts `lifecycle run --select <stage>` in its own process
group and kills the whole group (the CLI, Dagster's step, dbt) with SIGKILL at a seeded random moment: in
ingestion and dbt, a random share of the target step's reference duration after Dagster's event log shows it
started; in an activation, as a randomly chosen one of the step's write calls reaches the vendor, plus a
random delay, while HubSpot and Brevo take VENDOR_LATENCY_SECONDS to answer (so most kills land after the
vendor applied the write and before the run learned it). A moment that falls after the run's end starts
the trial over with an earlier one. The recovery run (`lifecycle run --select <stage>`, in-process) must
succeed on its own: the dead run does not hold the warehouse pool, it is marked failed, and nothing is left
in flight that would make the schedule or sensor skip. Then the stage's state must equal the reference:
raw tables row for row (dlt's own load ids aside), marts and sync models row for row, and for the
activations the CRM and Brevo state of every contact, every note once and every email exactly once.

Sizes: LIFECYCLE_TEST_CRASH_TRIALS (default 20) trials, LIFECYCLE_TEST_CRASH_SEED picks the moments.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import httpx
import pytest

from orchestration import cli, demo
from orchestration.liveness import run_in_flight
from sandbox.app import Sandbox
from settings import Settings, sandbox_environment
from tests.servers import fresh_sandbox

TRIALS = int(os.environ.get("LIFECYCLE_TEST_CRASH_TRIALS", "20"))
SEED = int(os.environ.get("LIFECYCLE_TEST_CRASH_SEED", "2026"))
WORLD_CONTACTS = 30
WORLD_SEED = 8
WORLD_START = "2026-08-01"
WORLD_DAYS = 120
AS_OF = "2026-11-28T12:00:00Z"
STEP_TIMEOUT_SECONDS = 240
"""How long a killed run may take to reach its target step on a busy 2-core machine."""

WRITES = {
    "hubspot_contacts_sync": "hubspot POST /crm/v3/objects/contacts/batch/upsert",
    "hubspot_notes_sync": "hubspot POST /crm/v3/objects/notes/batch/create",
    "brevo_contacts_sync": "brevo POST /v3/contacts/import",
    "brevo_list_members_sync": "brevo POST /v3/contacts/lists/{list_id}/contacts/add",
    "brevo_email_sends": "brevo POST /v3/smtp/email",
}
"""Each activation asset and the write call it makes: a kill lands right as one of them reaches the vendor,
the moment that decides between a lost answer and a duplicate."""
ACTIVATION_STEPS = tuple(WRITES)
VENDOR_LATENCY_SECONDS = 0.2
"""How long HubSpot and Brevo take to answer in activation trials (the sandbox's `latency_seconds`): the
write is applied, then the answer comes."""
KILL_JITTER_SECONDS = 0.3
"""After the chosen write reached the vendor, the kill comes within this much: mostly after the vendor
applied it and before its answer arrived, sometimes just after the run recorded the answer."""
KILL_ATTEMPTS = 4
"""How many times a trial starts over with an earlier moment when its kill came after the run ended."""
INGEST_STEPS = ("ingest_forms", "ingest_calendly", "ingest_stripe", "ingest_crm", "ingest_marketing")
TARGETS = (*(("activate", step) for step in ACTIVATION_STEPS), ("ingest", None), ("transform", "transform_dbt"))
"""One cycle of trial targets: each activation, an ingestion step (drawn per trial) and the dbt build."""
OWNED_CRM_PROPERTIES = (
    "email", "firstname", "lastname", "company", "phone", "hs_lead_status", "customer_segment",
    "primary_audience", "form_source", "original_touch_source", "original_touch_campaign", "original_touch_at",
    "latest_touch_source", "latest_touch_campaign", "latest_touch_at", "webinar_history", "demo_booked_at",
    "demo_event_name", "customer_status", "engagement_tier", "hubspot_owner_id", "hs_analytics_source",
    "lifecyclestage",
)


@dataclasses.dataclass(frozen=True)
class Trial:
    number: int
    stage: str
    step: str
    fraction: float
    """Where in the target step the kill lands: for an activation, which of its reference write calls (0:
    the first); otherwise, the share of its reference duration after it started."""
    jitter: float

    @property
    def name(self) -> str:
        return f"{self.number:02d}-{self.stage}-{self.step}"


def plan_trials(count: int, seed: int) -> list[Trial]:
    rng = random.Random(seed)
    trials = []
    for number in range(count):
        stage, step = TARGETS[number % len(TARGETS)]
        trials.append(Trial(number, stage, step or rng.choice(INGEST_STEPS), rng.random(),
                            rng.uniform(0, KILL_JITTER_SECONDS)))
    return trials


@dataclasses.dataclass
class Baseline:
    sandbox_url: str
    home: Path
    snapshots: dict[str, Path]
    """The home before each stage: "ingest" (H0), "transform" (H1), "activate" (H2)."""
    reference: dict[str, Any]
    """The state after each stage of the uninterrupted runs."""
    step_seconds: dict[str, float]
    step_writes: dict[str, int]
    """Write calls each activation step made in the reference run."""
    contacts: list[str]
    env: dict[str, str]


def environment(sandbox_url: str, home: Path) -> dict[str, str]:
    return {**sandbox_environment(sandbox_url, home), "DAGSTER_HOME": str(home / "dagster")}


def copy_home(source: Path, target: Path) -> None:
    """Make `target` an exact copy of `source` (a home folder or a snapshot of one)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, symlinks=True)


def make_world(sandbox_url: str, home: Path) -> None:
    """The world in a reset sandbox and in the home's landing zone; the sandbox keeps a snapshot of it, which
    every trial restores (the same ids and timestamps the reference run saw)."""
    fresh_sandbox(sandbox_url)
    settings = Settings.from_env(environment(sandbox_url, home))
    demo.generate_world(settings, contacts=WORLD_CONTACTS, seed=WORLD_SEED, sandbox_url=sandbox_url,
                       collector_url=None, start=WORLD_START, days=WORLD_DAYS)
    httpx.post(f"{sandbox_url}/_sandbox/brevo/imports/wait").raise_for_status()
    httpx.post(f"{sandbox_url}/_sandbox/snapshot").raise_for_status()


def restore_world(sandbox_url: str) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/restore").raise_for_status()


def run_stage(stage: str) -> None:
    """A normal run of one stage, as the operator (or the schedule's job) would start it."""
    assert cli.main(["run", "--select", stage, "--as-of", AS_OF, "--skip-dbt-tests"]) == 0, f"{stage} run failed"


# ----- what is compared ------------------------------------------------------------------------------


def table_rows(home: Path, schemas: tuple[str, ...]) -> dict[str, Counter]:
    """Every table of the schemas as a multiset of rows, without dlt's own bookkeeping columns (load ids and
    row ids differ between loads of the same data) and dlt's state tables."""
    tables: dict[str, Counter] = {}
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        listed = con.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
            "and table_schema in (select unnest(?::varchar[])) and table_name not like '\\_dlt%' escape '\\' "
            "order by all", [list(schemas)]).fetchall()
        for schema, table in listed:
            columns = [name for (name,) in con.execute(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
                "and column_name not like '\\_dlt%' escape '\\' order by ordinal_position",
                [schema, table]).fetchall()]
            select = ", ".join(f'"{name}"' for name in columns)
            tables[f"{schema}.{table}"] = Counter(
                json.dumps(row, default=str) for row in con.execute(f'select {select} from "{schema}"."{table}"')
                .fetchall())
    return tables


def destinations(sandbox_url: str, contacts: list[str]) -> dict[str, Any]:
    """What HubSpot and Brevo hold for every contact (owned and guarded CRM properties, notes with their
    count, Brevo attributes and lists) and the multiset of emails Brevo received."""
    state: dict[str, Any] = {}
    for email in contacts:
        crm = httpx.get(f"{sandbox_url}/_sandbox/hubspot/contacts/{email}")
        brevo = httpx.get(f"{sandbox_url}/_sandbox/brevo/contacts/{email}")
        state[email] = {
            "crm": None if crm.status_code == 404 else {
                "properties": {name: crm.json()["properties"].get(name) for name in OWNED_CRM_PROPERTIES},
                "notes": sorted((note["hs_timestamp"], note["hs_note_body"]) for note in crm.json()["notes"])},
            "brevo": None if brevo.status_code == 404 else {
                "attributes": brevo.json()["attributes"], "lists": sorted(brevo.json()["lists"])},
        }
    emails = httpx.get(f"{sandbox_url}/_sandbox/brevo/emails").json()
    received = Counter(json.dumps([email["to"][0]["email"], email["templateId"], email["params"]], sort_keys=True)
                       for email in emails)
    return {"contacts": state, "emails (copies of each)": dict(received)}


def stage_state(stage: str, sandbox_url: str, home: Path, contacts: list[str]) -> Any:
    """What a stage leaves behind: raw tables, marts and sync models, or the destinations and emails."""
    if stage == "ingest":
        return table_rows(home, ("raw_forms", "raw_calendly", "raw_stripe", "raw_crm", "raw_marketing"))
    if stage == "transform":
        return table_rows(home, ("marts", "sync"))
    return destinations(sandbox_url, contacts)


def differences(expected: dict, actual: dict, depth: int = 2) -> list[str]:
    """Readable differences between two states, down to `depth` levels of keys."""
    found = []
    for key in sorted(set(expected) | set(actual), key=str):
        want, got = expected.get(key), actual.get(key)
        if want == got:
            continue
        if depth > 1 and isinstance(want, dict) and isinstance(got, dict):
            found += [f"{key} / {line}" for line in differences(want, got, depth - 1)]
        else:
            found.append(f"{key}: expected {str(want)[:300]}, got {str(got)[:300]}")
    return found


# ----- the baseline ----------------------------------------------------------------------------------


def step_durations(home: Path) -> dict[str, float]:
    """Seconds per step of every run the instance holds (the latest run of a step wins)."""
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        durations = {}
        for record in reversed(instance.get_run_records()):
            for stats in instance.get_run_step_stats(record.dagster_run.run_id):
                if stats.end_time and stats.start_time:
                    durations[stats.step_key] = stats.end_time - stats.start_time
        return durations


@pytest.fixture(scope="module")
def baseline(sandbox_server: tuple[str, Sandbox], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baseline]:
    sandbox_url, _ = sandbox_server
    root = tmp_path_factory.mktemp("crash")
    home = root / "home"
    env = environment(sandbox_url, home)
    snapshots = {stage: root / f"before-{stage}" for stage in ("ingest", "transform", "activate")}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        make_world(sandbox_url, home)
        reference: dict[str, Any] = {}
        contacts: list[str] = []
        for stage in ("ingest", "transform", "activate"):
            copy_home(home, snapshots[stage])
            calls_before = sandbox_calls(sandbox_url)
            run_stage(stage)
            if stage == "transform":
                with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
                    contacts = [email for (email,) in con.execute(
                        "select email from marts.dim_contacts order by email").fetchall()]
            reference[stage] = stage_state(stage, sandbox_url, home, contacts)
        calls = sandbox_calls(sandbox_url)
        writes = {step: calls.get(call, 0) - calls_before.get(call, 0) for step, call in WRITES.items()}
        assert contacts and reference["activate"]["emails (copies of each)"], "the world must make contacts and emails"
        assert all(writes.values()), f"every activation must write in the reference run: {writes}"
        yield Baseline(sandbox_url, home, snapshots, reference, step_durations(home), writes, contacts, env)


# ----- a trial -----------------------------------------------------------------------------------------


def newest_run_id(instance: dg.DagsterInstance, known: set[str]) -> str | None:
    records = instance.get_run_records(limit=1)
    if records and records[0].dagster_run.run_id not in known:
        return records[0].dagster_run.run_id
    return None


def wait_for_step(home: Path, known: set[str], step: str, process: subprocess.Popen) -> str | None:
    """The id of the new run once its target step has started; None when the process ended first."""
    deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        run_id = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return None
            run_id = run_id or newest_run_id(instance, known)
            if run_id is not None:
                started = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
                if any(event.step_key == step for event in started):
                    return run_id
            time.sleep(0.05)
    raise AssertionError(f"the run did not reach step {step} within {STEP_TIMEOUT_SECONDS} s")


def sandbox_calls(sandbox_url: str) -> dict[str, int]:
    return httpx.get(f"{sandbox_url}/_sandbox/calls").json()


def wait_for_write(sandbox_url: str, call: str, count: int, process: subprocess.Popen) -> None:
    """Until the vendor has received `count` more of this write call (polled tightly)."""
    target = sandbox_calls(sandbox_url).get(call, 0) + count
    deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
    with httpx.Client() as http:
        while http.get(f"{sandbox_url}/_sandbox/calls").json().get(call, 0) < target:
            assert process.poll() is None, f"the run ended before its write {call} #{count}"
            assert time.monotonic() < deadline, f"no write {call} #{count} within {STEP_TIMEOUT_SECONDS} s"
            time.sleep(0.002)


def kill_during(trial: Trial, baseline: Baseline) -> str:
    """Start `lifecycle run --select <stage>` in its own process group and SIGKILL the group inside the target
    step: as one of an activation's write calls reaches the vendor, or some way into a longer step. Returns
    the killed run's id."""
    (baseline.home / "dagster").mkdir(exist_ok=True)  # before the first run of a fresh home
    with dg.DagsterInstance.from_config(str(baseline.home / "dagster")) as instance:
        known = {record.dagster_run.run_id for record in instance.get_run_records()}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "run", "--select", trial.stage, "--as-of", AS_OF,
         "--skip-dbt-tests"],
        env={**os.environ, **baseline.env}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if trial.stage == "activate":
            write = 1 + int(trial.fraction * baseline.step_writes[trial.step])
            wait_for_write(baseline.sandbox_url, WRITES[trial.step], write, process)
            time.sleep(trial.jitter)
        else:
            assert wait_for_step(baseline.home, known, trial.step, process), "the run ended before its step"
            time.sleep(trial.fraction * baseline.step_seconds.get(trial.step, 1.0))
        assert process.poll() is None, "the run ended before the kill: the moment was not inside it"
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        with dg.DagsterInstance.from_config(str(baseline.home / "dagster")) as instance:
            run_id = newest_run_id(instance, known)
        assert run_id is not None, "the killed process had created its run"
        return run_id
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def killed_run(trial: Trial, baseline: Baseline) -> str:
    """The id of a run of the trial's stage killed before it ended. On a busy machine a run can finish faster
    than the reference did, so the chosen moment falls after its end (it succeeded, the kill hit its
    process on the way out): then the same trial starts over from its stage's snapshot with the moment
    halfway earlier."""
    for _ in range(KILL_ATTEMPTS):
        restore_world(baseline.sandbox_url)
        copy_home(baseline.snapshots[trial.stage], baseline.home)
        slow = {"latency_seconds": VENDOR_LATENCY_SECONDS if trial.stage == "activate" else 0}
        for service in ("hubspot", "brevo"):
            httpx.post(f"{baseline.sandbox_url}/_sandbox/faults", json={"service": service, **slow}
                       ).raise_for_status()
        killed = kill_during(trial, baseline)
        httpx.post(f"{baseline.sandbox_url}/_sandbox/faults", json={}).raise_for_status()
        with dg.DagsterInstance.from_config(str(baseline.home / "dagster")) as instance:
            if instance.get_run_by_id(killed).status != dg.DagsterRunStatus.SUCCESS:
                return killed
        trial = dataclasses.replace(trial, fraction=trial.fraction / 2, jitter=trial.jitter / 2)
    raise AssertionError(f"every kill of {trial.name} came after its run had succeeded")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("trial", plan_trials(TRIALS, SEED), ids=lambda trial: trial.name)
def test_a_run_killed_at_any_moment_converges_after_the_next_run(
        trial: Trial, baseline: Baseline, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in baseline.env.items():
        monkeypatch.setenv(name, value)
    killed = killed_run(trial, baseline)
    run_stage(trial.stage)

    with dg.DagsterInstance.from_config(str(baseline.home / "dagster")) as instance:
        assert run_in_flight(instance) is None, "nothing may stay in flight: the schedule and sensor would skip"
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.FAILURE
    actual = stage_state(trial.stage, baseline.sandbox_url, baseline.home, baseline.contacts)
    expected = baseline.reference[trial.stage]
    assert actual == expected, "\n".join(differences(expected, actual)[:20])
    if trial.stage == "activate":
        with duckdb.connect(str(baseline.home / "warehouse.duckdb"), read_only=True) as con:
            assert con.execute("select count(*) from activations.send_ledger where status = 'sending'"
                               ).fetchone() == (0,), "every email's fate is settled"
