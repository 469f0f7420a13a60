"""`abri serve --workers 2` as the README's "Running it for real" starts it: a real process
tree on a free port, scraped as Prometheus would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import TEST_KEY
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
COUNT = re.compile(
    r'^abri_http_request_duration_seconds_count\{method="GET",route="/health/ready",'
    r'status="200"\} (\S+)$',
    re.M,
)


def test_metrics_of_several_api_processes_add_up_without_setup(tmp_path: Path) -> None:
    """README: `abri serve --host 127.0.0.1 --port 8000 --workers 2`, and "/metrics serves
    Prometheus metrics". Without PROMETHEUS_MULTIPROC_DIR (set only in the systemd unit) each
    scrape landed on one process and showed its share: counters jumped back and forth, which
    Prometheus reads as resets, and half the requests were missing from every graph."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABRI_", "PROMETHEUS_"))}
    env.update(
        ABRI_ADDRESS_KEY=TEST_KEY,
        ABRI_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'abri.db'}",
        ABRI_RUN_JOBS="0",
        PYTHONPATH=str(ROOT),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        ready = 0
        while time.monotonic() < deadline and ready < 1:
            try:
                ready += httpx.get(f"{base}/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.3)
        assert ready, "server did not become ready"
        time.sleep(3)  # the second process is up too
        for _ in range(19):  # a new connection each: the kernel spreads them over both
            assert httpx.get(f"{base}/health/ready", timeout=5).status_code == 200
        seen = set()
        for _ in range(8):
            text = httpx.get(f"{base}/metrics", timeout=10).text
            m = COUNT.search(text)
            seen.add(float(m.group(1)) if m else 0.0)
        assert seen == {20.0}, seen
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    leftovers = [p for p in Path("/tmp").glob("abri-metrics-*") if str(proc.pid) in p.name]
    assert leftovers == []
