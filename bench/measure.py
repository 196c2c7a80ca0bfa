"""One measured run: ``lifecycle run`` in a child process, its memory sampled, its stages read back from
the Dagster instance and its API calls from the sandbox.

Wall seconds per stage come from Dagster's step statistics (the run's steps execute one after another, so
a stage spans its first step's start to its last step's end; what is left of the wall time is the fixed
cost of a run: interpreter, imports, definitions, preflight); each step's own seconds are kept too
(``steps``: the profile of where a run's time goes; the activations' step runs HubSpot's and Brevo's
assets side by side, and each asset's own seconds are listed under its key). Memory is the resident set
of the run's whole process tree (the run and the dbt process it starts), sampled every ``SAMPLE_SECONDS``.
Rows changed are the runs' own numbers (rows dlt loaded, models dbt built, rows and emails the activations sent). Write calls
are the sandbox's count of the calls that change something (not searches or batch reads); their minimum is
the batches the activations filled; the rate-limit floor is, per vendor, the time its limits need for the
activations' calls, HubSpot and Brevo being separate quotas.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from orchestration.builds import STANDING
from orchestration.run_output import stage_of

SAMPLE_SECONDS = 0.1
PROGRESS_SECONDS = 15.0
STAGES = ("ingest", "transform", "activate", "publish")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
READS_BY_POST = ("/search", "/batch/read")
"""POST endpoints that only read (HubSpot's search and batch read)."""
MB = 1024 * 1024
RUN_ID = re.compile(r"run id ([0-9a-f-]{36})")


def is_write(endpoint: str) -> bool:
    """``[service] METHOD /path``: a call that changes something at the vendor."""
    method, path = endpoint.split(" ")[-2:]
    return method in WRITE_METHODS and not path.endswith(READS_BY_POST)


def calls_between(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {endpoint: count - before.get(endpoint, 0) for endpoint, count in sorted(after.items())
            if count > before.get(endpoint, 0)}


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in (process, *process.children(recursive=True)):
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


@dataclass(frozen=True)
class Sample:
    at: float
    rss: int


@dataclass(frozen=True)
class ChildRun:
    returncode: int
    wall_seconds: float
    samples: tuple[Sample, ...]
    output: str


def run_child(argv: Sequence[str], env: Mapping[str, str], log_path: Path,
              progress: Callable[[float, int], None] | None = None) -> ChildRun:
    """Run ``argv`` to its end, sampling its process tree's memory; its output goes to ``log_path``.
    ``progress`` gets the seconds so far and the memory in use every ``PROGRESS_SECONDS``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    started = time.time()
    reported = started
    with open(log_path, "w") as log:
        child = subprocess.Popen(list(argv), env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        process = psutil.Process(child.pid)
        while child.poll() is None:
            samples.append(Sample(time.time(), tree_rss(process)))
            if progress and samples[-1].at - reported >= PROGRESS_SECONDS:
                reported = samples[-1].at
                progress(reported - started, samples[-1].rss)
            time.sleep(SAMPLE_SECONDS)
    return ChildRun(child.returncode, time.time() - started, tuple(samples), log_path.read_text())


def sandbox_calls(sandbox_url: str) -> dict[str, int]:
    return httpx.get(f"{sandbox_url}/_sandbox/calls", timeout=30).json()


def sandbox_limits(sandbox_url: str) -> dict[str, Any]:
    return httpx.get(f"{sandbox_url}/_sandbox/limits", timeout=30).json()


def rate_limit_floor(calls: Mapping[str, int], limits: Mapping[str, Any]) -> dict[str, float]:
    """Per vendor, the seconds its rate limits alone need for ``calls`` (``METHOD /path`` per vendor as
    ``vendor METHOD /path``): per limit group, the calls past the first window's allowance, one window per
    allowance. A vendor's floor is its slowest group; vendors do not wait for each other."""
    per_group: Counter[tuple[str, str]] = Counter()
    for endpoint, count in calls.items():
        vendor, method, path = endpoint.split(" ", 2)
        group = limits.get(vendor, {}).get("routes", {}).get(f"{method} {path}")
        if group:
            per_group[vendor, group] += count
    floors: dict[str, float] = {}
    for (vendor, group), count in per_group.items():
        window = limits[vendor]["groups"][group]
        seconds = max(0, count - window["limit"]) / window["limit"] * window["window_seconds"]
        floors[vendor] = max(floors.get(vendor, 0.0), round(seconds, 1))
    return floors


def _peak_mb(samples: Sequence[Sample], start: float | None = None, end: float | None = None) -> float:
    inside = [s.rss for s in samples if (start is None or s.at >= start) and (end is None or s.at <= end)]
    return round(max(inside, default=0) / MB, 1)


def _run_record(dagster_home: Path, run_id: str) -> tuple[list[Any], list[tuple[str, str, dict[str, Any]]]]:
    """The run's step statistics and, per materialization, (step, asset, metadata as plain values)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        steps = list(instance.get_run_step_stats(run_id))
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        materialized = []
        for record in records:
            event = record.event_log_entry.dagster_event
            materialization = event.step_materialization_data.materialization
            materialized.append((event.step_key, materialization.asset_key.to_user_string(),
                                 {name: value.value for name, value in materialization.metadata.items()}))
    return steps, materialized


def sandbox_endpoint(asset: str, call: str, limits: Mapping[str, Any]) -> str:
    """An activation asset's call, ``METHOD /path`` under its client's base URL, as the sandbox names the
    endpoint (``vendor METHOD /path``). The vendor is the key's first word (``brevo_list_members_sync``); the
    path is the sandbox route it ends with, the shortest first, since a base URL may carry a prefix (Brevo's
    ``/v3``) and a route's ``{placeholder}`` stands for any segment (``normal`` for ``{category}``)."""
    vendor = asset.split("_", 1)[0]
    method, path = call.split(" ", 1)
    wanted = path.strip("/").split("/")
    for route in sorted(limits.get(vendor, {}).get("routes", {}), key=len):
        route_method, route_path = route.split(" ", 1)
        segments = route_path.strip("/").split("/")
        if route_method == method and len(segments) >= len(wanted) and all(
                theirs == ours or theirs.startswith("{")
                for theirs, ours in zip(segments[len(segments) - len(wanted):], wanted, strict=True)):
            return f"{vendor} {route}"
    return f"{vendor} {call}"


def measure_run(name: str, argv: Sequence[str], env: Mapping[str, str], *, home: Path, sandbox_url: str,
                log_path: Path, progress: Callable[[float, int], None] | None = None) -> dict[str, Any]:
    """Run one pipeline pass and return its numbers (see the module docstring)."""
    limits = sandbox_limits(sandbox_url)
    before = sandbox_calls(sandbox_url)
    child = run_child(argv, env, log_path, progress)
    calls = calls_between(before, sandbox_calls(sandbox_url))
    found = RUN_ID.search(child.output)
    result: dict[str, Any] = {
        "run": name, "ok": child.returncode == 0, "wall_seconds": round(child.wall_seconds, 1),
        "peak_rss_mb": _peak_mb(child.samples), "log": str(log_path),
        "api_calls": calls, "write_calls": {e: n for e, n in calls.items() if is_write(e)},
    }
    result["write_calls_total"] = sum(result["write_calls"].values())
    if found is None:
        result["error"] = child.output[-2000:]
        return result
    steps, materialized = _run_record(home / "dagster", found.group(1))
    stages: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        spans = [(s.start_time, s.end_time) for s in steps
                 if stage_of(s.step_key) == stage and s.start_time and s.end_time]
        if not spans:
            continue
        start, end = min(a for a, _ in spans), max(b for _, b in spans)
        stages[stage] = {"wall_seconds": round(end - start, 1), "peak_rss_mb": _peak_mb(child.samples, start, end)}
    ingest = {asset: int(meta.get("rows_loaded") or 0) for step, asset, meta in materialized
              if stage_of(step) == "ingest"}
    if "ingest" in stages:
        stages["ingest"]["rows_changed"] = sum(ingest.values())
        stages["ingest"]["rows_loaded"] = {asset: rows for asset, rows in sorted(ingest.items()) if rows}
    if "transform" in stages:
        stages["transform"]["rows_changed"] = None
        stages["transform"]["models_built"] = sum(1 for step, _, meta in materialized
                                                  if stage_of(step) == "transform" and not meta.get(STANDING))
    activations = [(asset, meta) for step, asset, meta in materialized if stage_of(step) == "activate"]
    if "activate" in stages:
        activation_calls: Counter[str] = Counter()
        for asset, meta in activations:
            for call, count in (meta.get("api_calls") or {}).items():
                activation_calls[sandbox_endpoint(asset, call, limits)] += count
        writes = sum(n for e, n in activation_calls.items() if is_write(e))
        minimum = sum(int(meta.get("batches") or 0) for _, meta in activations)
        floors = rate_limit_floor(activation_calls, limits)
        stages["activate"].update({
            "rows_changed": sum(int(meta.get("changed", meta.get("sent")) or 0) for _, meta in activations),
            "per_asset": {asset: {"changed": meta.get("changed", meta.get("sent")), "rejected": meta.get("rejected")}
                          for asset, meta in activations},
            "write_calls": writes,
            "batch_minimum": minimum,
            "write_calls_per_minimum": round(writes / minimum, 3) if minimum else None,
            "rate_limit_floor_seconds": max(floors.values(), default=0.0),
            "rate_limit_floor_per_vendor": floors,
            "limits_on": {vendor: limit["on"] for vendor, limit in limits.items()},
        })
    result["stages"] = stages
    result["steps"] = {s.step_key: round(s.end_time - s.start_time, 1)
                       for s in sorted(steps, key=lambda s: s.start_time or 0) if s.start_time and s.end_time}
    from orchestration.defs.activate import ASSET_SECONDS

    result["steps"].update({asset: meta[ASSET_SECONDS] for asset, meta in activations if ASSET_SECONDS in meta})
    result["overhead_seconds"] = round(child.wall_seconds - sum(s["wall_seconds"] for s in stages.values()), 1)
    result["echo"] = {
        "crm_contacts_loaded": ingest.get("raw_crm/contacts", 0),
        "marketing_contacts_loaded": ingest.get("raw_marketing/contacts", 0),
        "crm_read_calls": sum(n for e, n in calls.items() if e.startswith("hubspot") and not is_write(e)),
        "marketing_read_calls": sum(n for e, n in calls.items()
                                    if e.startswith("brevo GET /v3/contacts")),
    }
    return result
