"""Run ``lifecycle`` as a real process against a sandbox, with an environment of the test's choosing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import httpx

from settings import sandbox_environment

LIFECYCLE = str(Path(sys.executable).parent / "lifecycle")
CONFIG_VARIABLES = (*sandbox_environment("http://unused", Path()), "DAGSTER_HOME")
"""Every variable the tool reads; none is inherited from the test's own environment."""
READ_ONLY = (" GET ", "/search", "/batch/read")
"""Sandbox call keys ("service METHOD path") that only read."""


def lifecycle_env(sandbox_url: str, home: Path, **overrides: str | None) -> dict[str, str]:
    """The sandbox's settings for ``home`` (Dagster's instance in ``home/dagster``); an override of None
    leaves that variable unset."""
    env = {name: value for name, value in os.environ.items() if name not in CONFIG_VARIABLES}
    env.update(sandbox_environment(sandbox_url, home), DAGSTER_HOME=str(home / "dagster"))
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_lifecycle(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``lifecycle ARGS`` in its own process, started in the home folder."""
    return subprocess.run([LIFECYCLE, *args], env=env, cwd=env["LIFECYCLE_HOME"], capture_output=True,
                          text=True, timeout=1800, check=False)


def sandbox_calls(sandbox_url: str) -> dict[str, int]:
    return httpx.get(f"{sandbox_url}/_sandbox/calls").json()


def write_calls(sandbox_url: str, before: dict[str, int]) -> dict[str, int]:
    """Calls to any emulated API since ``before`` that may write."""
    return {key: count - before.get(key, 0) for key, count in sandbox_calls(sandbox_url).items()
            if count > before.get(key, 0) and not any(part in key for part in READ_ONLY)}


def dagster_runs(home: Path) -> list[dg.DagsterRun]:
    """The runs recorded in ``home``'s Dagster instance (none when no run ever started there)."""
    if not (home / "dagster").exists():
        return []
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        return list(instance.get_runs())
