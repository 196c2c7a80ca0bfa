"""The bench's scenario: a world, then full -> 1 % change -> no change, with the rate limits off and/or on.

Everything happens in a home of the bench's own (``$LIFECYCLE_HOME/bench/<N>`` unless ``--home``), which it
wipes at the start, and against a sandbox and a collector it starts on free ports, so a bench never touches
the operator's data or destinations. With both limit modes the world is generated once: the sandbox keeps a
snapshot and the landing zone a copy, and the second mode starts again from them.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import psutil

from bench.measure import MB, PROGRESS_SECONDS, measure_run
from settings import Settings, sandbox_environment

RESULTS_DIR = Path("bench/results")
BENCH_MARKER = ".lifecycle-bench"
CHANGED_SHARE = 0.01
RUNS = ("full", "change", "no_change")
LIMIT_MODES = {"off": ("off",), "on": ("on",), "both": ("off", "on")}


@dataclass(frozen=True)
class BenchConfig:
    contacts: int
    seed: int = 1
    limits: str = "off"
    results_dir: Path = RESULTS_DIR
    home: Path | None = None


def say(line: str) -> None:
    print(line, flush=True)


def prepare_home(home: Path) -> None:
    """An empty home for the bench; only ever wipes one that a bench created."""
    if home.exists() and any(home.iterdir()) and not (home / BENCH_MARKER).exists():
        raise SystemExit(f"{home} holds data that the bench did not create; pass another --home")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / BENCH_MARKER).write_text("created by `lifecycle bench`; the bench may wipe this folder\n")


def reset_home(home: Path, landing_copy: Path) -> None:
    """Back to the moment the world was generated: its landing zone, no warehouse, no runs."""
    for child in home.iterdir():
        if child.name in (BENCH_MARKER, landing_copy.name):
            continue
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(landing_copy, home / "landing")


def set_limits(sandbox_url: str, on: bool) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/limits", json={"on": True} if on else {"off": True},
               timeout=30).raise_for_status()


def sandbox_admin(sandbox_url: str, action: str) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/{action}", timeout=600).raise_for_status()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def pick_known(warehouse: Path, count: int, seed: int, path: Path) -> int:
    """``count`` contacts of the marts, drawn by a seeded hash (the same ones for the same world)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("""
            select email, first_name, last_name, segment from marts.dim_contacts
            order by hash(email || ?::varchar), email limit ?""", [seed, count]).fetchall()
    columns = ("email", "first_name", "last_name", "segment")
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(dict(zip(columns, row, strict=True))) + "\n" for row in rows)
    return len(rows)


def hour_of_change(config: BenchConfig, home: Path, start: datetime, end: datetime, urls: tuple[str, str]) -> dict:
    """One realistic hour's worth of change (sandbox/hour.py) for 1 % of the contacts, timestamped in
    ``[start, end)``: the time since the full run's as-of, so that nothing lies in the vendors' future."""
    sandbox_url, collector_url = urls
    changed = max(1, round(config.contacts * CHANGED_SHARE))
    known = home / "bench-known-contacts.jsonl"
    pick_known(home / "warehouse.duckdb", changed, config.seed, known)
    completed = subprocess.run(
        [sys.executable, "-m", "sandbox", "hour", "--contacts", str(config.contacts), "--changed", str(changed),
         "--known", str(known), "--start", iso(start), "--end", iso(end), "--seed", str(config.seed),
         "--sandbox-url", sandbox_url, "--collector-url", collector_url],
        check=False, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(completed.stderr.strip() or f"the hour generator failed (exit {completed.returncode})")
    return json.loads(completed.stdout)


def progress_line(label: str) -> Callable[[float, int], None]:
    return lambda seconds, rss: say(f"    {label}: {seconds:.0f} s, {rss / MB:,.0f} MB in use")


@contextmanager
def heartbeat(label: str) -> Iterator[None]:
    """A line every PROGRESS_SECONDS while a long step runs in this process: the time so far."""
    done = threading.Event()
    started = datetime.now(UTC)

    def beat() -> None:
        while not done.wait(PROGRESS_SECONDS):
            say(f"    {label}: {(datetime.now(UTC) - started).total_seconds():.0f} s")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def run_line(result: dict[str, Any]) -> str:
    stages = result.get("stages", {})
    parts = ", ".join(f"{stage} {numbers['wall_seconds']:.1f}" for stage, numbers in stages.items())
    activate = stages.get("activate", {})
    writes = (f"{result['write_calls_total']:,} write calls (batch minimum {activate.get('batch_minimum', 0):,})"
              if activate else f"{result['write_calls_total']:,} write calls")
    status = "ok" if result["ok"] else "FAILED"
    return (f"  {result['run']:<9} {status} {result['wall_seconds']:6.1f} s ({parts}; overhead "
            f"{result.get('overhead_seconds', 0):.1f}), peak {result['peak_rss_mb']:,.0f} MB, {writes}")


def scenario(config: BenchConfig, home: Path, env: dict[str, str], urls: tuple[str, str],
             limits_on: bool, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """full -> 1 % change -> no change, each one ``lifecycle run`` measured; ``save`` gets the outcome so far
    after each run, so that a long bench stopped midway keeps the runs it finished."""
    sandbox_url = urls[0]
    set_limits(sandbox_url, limits_on)
    start = now()
    as_of = {"full": start}
    runs: list[dict[str, Any]] = []
    hour: dict[str, Any] = {}
    for name in RUNS:
        if name == "change":
            say(f"  an hour's worth of change for {CHANGED_SHARE:.0%} of the contacts ...")
            set_limits(sandbox_url, False)
            hour = hour_of_change(config, home, start, now(), urls)
            set_limits(sandbox_url, limits_on)
            as_of["change"] = as_of["no_change"] = now() + timedelta(seconds=1)
        say(f"  run {name} (as of {iso(as_of[name])}) ...")
        argv = [sys.executable, "-m", "orchestration.cli", "run", "--select", "all", "--as-of", iso(as_of[name])]
        result = measure_run(name, argv, env, home=home, sandbox_url=sandbox_url,
                             log_path=home / "logs" / f"bench-{name}.log", progress=progress_line(name))
        result["as_of"] = iso(as_of[name])
        say(run_line(result))
        runs.append(result)
        save({"limits": "on" if limits_on else "off", "hour_of_change": hour, "runs": runs})
        if not result["ok"]:
            say(f"  the run failed; its output is in {result['log']}")
            break
    return {"limits": "on" if limits_on else "off", "hour_of_change": hour, "runs": runs}


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 1024 ** 3, 1),
            "python": platform.python_version(), "duckdb": duckdb.__version__,
            "commit": commit.stdout.strip() or None}


def bench(config: BenchConfig) -> list[Path]:
    """Run the bench; returns the JSON files written (one per limit mode)."""
    from orchestration.demo import generate_world
    from orchestration.services import background_service, collector_command, free_port, sandbox_command

    home = (config.home or Settings.from_env().home / "bench" / str(config.contacts)).resolve()
    prepare_home(home)
    sandbox_port, collector_port = free_port(), free_port()
    urls = (f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{collector_port}")
    env = {**os.environ, **sandbox_environment(urls[0], home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("LIFECYCLE_ALERT_WEBHOOK_URL", None)
    written = []
    with background_service(sandbox_command(sandbox_port), f"{urls[0]}/healthz", env), \
            background_service(collector_command(collector_port), f"{urls[1]}/healthz", env):
        set_limits(urls[0], False)
        say(f"bench: a world of {config.contacts:,} contacts (seed {config.seed}) in {home} ...")
        started = datetime.now(UTC)
        with heartbeat("world"):
            world = generate_world(Settings.from_env(env), contacts=config.contacts, seed=config.seed,
                                   sandbox_url=urls[0], collector_url=urls[1])
        world_seconds = (datetime.now(UTC) - started).total_seconds()
        say(f"  {world['raw_events']:,} raw events in {world_seconds:.0f} s")
        landing_copy = home / "world-landing"
        shutil.copytree(home / "landing", landing_copy)
        sandbox_admin(urls[0], "snapshot")
        for number, mode in enumerate(LIMIT_MODES[config.limits]):
            if number:
                reset_home(home, landing_copy)
                sandbox_admin(urls[0], "restore")
            say(f"limits {mode}:")
            header = {"contacts": config.contacts, "seed": config.seed, "started_at": iso(started),
                      "machine": machine(), "world": {"raw_events": world["raw_events"],
                                                      "seconds": round(world_seconds, 1)}}

            def save(outcome: dict[str, Any], header: dict[str, Any] = header) -> Path:
                return write_result(config.results_dir, {**header, **outcome})

            written.append(save(scenario(config, home, env, urls, limits_on=mode == "on", save=save)))
            say(f"  results: {written[-1]}")
    return written


def write_result(results_dir: Path, record: dict[str, Any]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = record["started_at"].replace(":", "").replace("-", "")
    path = results_dir / f"{stamp}-n{record['contacts']}-limits-{record['limits']}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def latest_results(results_dir: Path) -> list[dict[str, Any]]:
    """The newest result per (contacts, limits), smallest world first."""
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    for path in sorted(results_dir.glob("*.json")):
        record = json.loads(path.read_text())
        latest[record["contacts"], record["limits"]] = record
    return [latest[key] for key in sorted(latest)]


def _cell(stages: dict[str, Any], stage: str, key: str) -> str:
    value = stages.get(stage, {}).get(key)
    return "–" if value is None else f"{value:,}"


TABLE_HEADER = ("| contacts | limits | run | wall s | ingest s | transform s | activate s | fixed s | peak RSS MB "
                "| rows loaded | rows synced + emails | write calls / batch minimum | rate-limit floor s |\n"
                "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def table(records: Sequence[dict[str, Any]]) -> str:
    """The README's table: one row per run of each result."""
    lines = [TABLE_HEADER]
    for record in records:
        for run in record["runs"]:
            stages = run.get("stages", {})
            writes = f"{run['write_calls_total']:,} / {stages.get('activate', {}).get('batch_minimum', 0):,}"
            lines.append(
                f"| {record['contacts']:,} | {record['limits']} | {run['run']}{'' if run['ok'] else ' (FAILED)'} "
                f"| {run['wall_seconds']:,} | {_cell(stages, 'ingest', 'wall_seconds')} "
                f"| {_cell(stages, 'transform', 'wall_seconds')} | {_cell(stages, 'activate', 'wall_seconds')} "
                f"| {run.get('overhead_seconds', '–')} | {run['peak_rss_mb']:,.0f} "
                f"| {_cell(stages, 'ingest', 'rows_changed')} | {_cell(stages, 'activate', 'rows_changed')} "
                f"| {writes} | {_cell(stages, 'activate', 'rate_limit_floor_seconds')} |")
    return "\n".join(lines)
