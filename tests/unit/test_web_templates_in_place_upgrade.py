"""RUNBOOK, Upgrade: step 2 installs the new version into the venv while the old processes
still run; step 3 restarts them. In between, a running API process must go on rendering the
pages it started with: it read each template from disk when first asked for it and again
whenever the file changed, so after ``pip install --upgrade`` the old code rendered the new
templates — the task-force page answered 500 (a new template asking for a value the old code
does not give) until the restart."""

from __future__ import annotations

import os

import pytest


def test_a_running_process_keeps_the_templates_it_started_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api.web import controllers

    env = controllers._env
    assert env.loader is not None

    def new_version(environment: object, name: str) -> tuple[str, None, object]:
        return "{{ a_value_the_old_code_does_not_give.x }}", None, lambda: False

    real_mtime = os.path.getmtime
    # pip install --upgrade: every template file is new on disk
    monkeypatch.setattr(os.path, "getmtime", lambda p: real_mtime(p) + 3600)
    monkeypatch.setattr(env.loader, "get_source", new_version)
    names = env.list_templates()
    assert "taskforce.html" in names and "staff.html" in names
    for name in names:
        template = env.get_template(name)
        assert (template.filename or "").endswith(name), f"{name} was read again from disk"
