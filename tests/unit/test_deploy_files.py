"""The deployment examples in ops/deploy/ fit the application they front."""

from __future__ import annotations

import re
from pathlib import Path

from api.app import create_app
from capacity.settings import Settings
from tests.conftest import TEST_KEY

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
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", address_key=TEST_KEY)
    )
    streams = [r.path for r in app.routes if r.path.endswith("/stream")]
    assert len(streams) >= 3
    assert [p for p in streams if not pattern.search(p)] == []
