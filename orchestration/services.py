"""Start and stop the sandbox and the collector as child processes (for ``lifecycle demo``).

They run as separate processes, as they would in production, and the sandbox is started through
``python -m sandbox`` so that no product code imports it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(process.args)} exited with code {process.returncode}")
        if reachable(url):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy within {timeout:.0f} s")


@contextmanager
def background_service(args: list[str], health_url: str, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """Run ``args`` until the block ends; waits for ``health_url`` to answer 200 first."""
    process = subprocess.Popen(args, env={**os.environ, **env})
    try:
        wait_healthy(health_url, process)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; nothing if the process has already ended."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def sandbox_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "sandbox", "serve", "--host", host, "--port", str(port)]


def collector_command(port: int) -> list[str]:
    return [sys.executable, "-m", "orchestration.cli", "collector", "--port", str(port)]
