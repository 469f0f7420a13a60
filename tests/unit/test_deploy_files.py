"""The deployment examples in ops/deploy/ fit the application they front."""

from __future__ import annotations

import re
from pathlib import Path

from api.app import create_app
from capacity.settings import Settings
from tests.conftest import TEST_EPISODE_KEY, TEST_KEY

ROOT = Path(__file__).resolve().parents[2]


def test_every_live_stream_gets_the_unbuffered_long_lived_nginx_location(tmp_path: Path) -> None:
    """The nginx example gives server-sent event streams their own location (no buffering, a
    1 h read timeout). A stream left to `location /` is cut by its 30 s read timeout whenever
    30 s pass without an event: the night worker's link page (/web/link/stream) was."""
    conf = (ROOT / "ops" / "deploy" / "nginx-abri.conf").read_text()
    found = re.search(r"location ~ (\S+) \{\n\s+proxy_pass[^}]*proxy_read_timeout 1h", conf)
    assert found, "no stream location in the nginx example"
    pattern = re.compile(found.group(1))
    app = create_app(
        Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
            address_key=TEST_KEY,
            episode_key=TEST_EPISODE_KEY,
        )
    )
    streams = [r.path for r in app.routes if r.path.endswith("/stream")]
    assert len(streams) >= 3
    assert [p for p in streams if not pattern.search(p)] == []


def _nginx_location(conf: str, uri: str) -> str:
    """The body of the location nginx picks for ``uri`` in the TLS server (nginx's order: an
    exact ``=`` match; else the longest prefix, kept if it is ``^~``; else the first regular
    expression that matches; else that longest prefix)."""
    server = conf[conf.index("listen 443") :]
    blocks = re.findall(r"location\s+(=|\^~|~\*?)?\s*(\S+)\s*\{([^}]*)\}", server)
    for mod, path, body in blocks:
        if mod == "=" and path == uri:
            return body
    prefixes = [(path, mod, body) for mod, path, body in blocks if mod in ("", "^~")]
    prefixes = [p for p in prefixes if uri.startswith(p[0])]
    longest = max(prefixes, key=lambda p: len(p[0]), default=None)
    if longest is not None and longest[1] == "^~":
        return longest[2]
    for mod, path, body in blocks:
        if mod in ("~", "~*") and re.search(path, uri, re.I if mod == "~*" else 0):
            return body
    assert longest is not None, f"no nginx location for {uri}"
    return longest[2]


async def test_the_metrics_stay_on_the_monitoring_network_however_they_are_asked_for(
    tmp_path: Path,
) -> None:
    """The app answers ``/metrics/`` as well as ``/metrics``, without a token. The nginx
    example kept only the exact path to the monitoring network (``location = /metrics``):
    ``https://abri.example.be/metrics/`` went to ``location /`` and anyone could read them."""
    import httpx

    conf = (ROOT / "ops" / "deploy" / "nginx-abri.conf").read_text()
    app = create_app(
        Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
            address_key=TEST_KEY,
            episode_key=TEST_EPISODE_KEY,
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        for uri in ("/metrics", "/metrics/"):
            assert (await client.get(uri)).status_code == 200, uri  # no token needed
            assert "deny all" in _nginx_location(conf, uri), f"{uri} reaches the internet"
    assert "deny all" not in _nginx_location(conf, "/holds")
    assert "proxy_read_timeout 1h" in _nginx_location(conf, "/web/link/stream")


def _megabytes(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([kKmM]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1 / 2**20, "k": 1 / 1024, "m": 1}[unit.lower()]


def test_nginx_lets_through_the_csv_import_the_app_accepts(tmp_path: Path) -> None:
    """The app takes a facility CSV of up to 5 MB; the example's server-wide 2 MB cap answered
    a 3 MB file with nginx's own 413 page before Abri saw it."""
    conf = (ROOT / "ops" / "deploy" / "nginx-abri.conf").read_text()
    app = create_app(
        Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
            address_key=TEST_KEY,
            episode_key=TEST_EPISODE_KEY,
        )
    )
    [route] = [r for r in app.routes if r.path == "/admin/facilities/import"]
    [handler] = [h for h in route.route_handlers if "POST" in h.http_methods]  # type: ignore[attr-defined]
    accepted = handler.request_max_body_size / 2**20
    body = _nginx_location(conf, "/admin/facilities/import")
    cap = re.search(r"client_max_body_size (\S+);", body) or re.search(
        r"client_max_body_size (\S+);", conf
    )
    assert cap is not None
    assert _megabytes(cap.group(1)) >= accepted, (cap.group(1), accepted)
    assert "proxy_pass http://abri_api" in body


def test_every_proxied_nginx_location_passes_the_host() -> None:
    """The stream location of the nginx example forgot `proxy_set_header Host $host` (every
    other one had it): the app then sees the upstream's name (`abri_api`), not the site's."""
    conf = (ROOT / "ops" / "deploy" / "nginx-abri.conf").read_text()
    server = conf[conf.index("listen 443") :]
    blocks = re.findall(r"location\s+(?:=|\^~|~\*?)?\s*(\S+)\s*\{([^}]*)\}", server)
    proxied = [(path, body) for path, body in blocks if "proxy_pass" in body]
    assert len(proxied) >= 4
    assert [p for p, body in proxied if "proxy_set_header Host $host;" not in body] == []


def test_the_runbook_readiness_check_shows_why_it_failed() -> None:
    """RUNBOOK, Upgrade step 4: "``curl … /health/ready``: 503 with ``"schema": "behind: …"``
    means the migrations did not run". It was written ``curl -fsS``: on a 503, ``-f`` prints
    only "curl: (22) The requested URL returned error: 503" and no body, so the operator never
    saw the ``schema`` note the step tells them to read (nor ``addressKey``).
    ``--fail-with-body`` (curl 7.76+) keeps the failing exit status and prints the body."""
    runbook = (ROOT / "ops" / "RUNBOOK.md").read_text()
    checks = re.findall(r"`(curl [^`]*/health/ready[^`]*)`", runbook)
    assert checks, "no readiness check in the RUNBOOK"
    for command in checks:
        flags = command.split()
        hides_body = any(
            f == "--fail" or (f.startswith("-") and not f.startswith("--") and "f" in f)
            for f in flags
        )
        assert not hides_body, f"{command!r} prints no body on a 503"
