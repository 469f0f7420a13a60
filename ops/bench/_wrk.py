"""The holds benchmark's load with ``wrk`` (a C load generator) instead of our Python client.

pgbench, the ceiling the holds are compared with, is a C client that costs PostgreSQL's machine
little; our asyncio client costs about 0.08 ms of CPU per request on the same two cores. With
wrk the comparison is between two C clients. Same mix as ``holds.Mix``: a share of requests on
the hot pools, families of two, a hold on a hot pool always released at once, one on a cold
pool with ``cold_release`` probability. wrk gives no warm-up; its whole run is counted.

Debian's package ``wrk`` (4.1, LuaJIT). The Lua script is generated per run; wrk reports the
per-status counts through ``done()`` on one line (``ABRI_COUNTS ...``).
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCRIPT = r"""
local hots = %(hots)s
local colds = %(colds)s
local HOT_SHARE, COLD_RELEASE = %(hot_share)s, %(cold_release)s
local FAMILY_SHARE, SEED = %(family_share)s, %(seed)s
local ONE, TWO = %(one)s, %(two)s
local TOKEN = %(token)s
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(SEED * 1000 + id)
  pending = {}
  n = 0
  h201, h409, hother, r200, rother = 0, 0, 0, 0, 0
  hold_headers = {["Authorization"] = "Bearer " .. TOKEN, ["Content-Type"] = "application/json"}
  release_headers = {["Authorization"] = "Bearer " .. TOKEN}
end

function request()
  local ref = table.remove(pending)
  if ref then
    return wrk.format("POST", "/holds/" .. ref .. "/release", release_headers, "")
  end
  local pool
  if math.random() < HOT_SHARE then
    pool = hots[math.random(#hots)]
  else
    pool = colds[math.random(#colds)]
  end
  local household = ONE
  if math.random() < FAMILY_SHARE then household = TWO end
  n = n + 1
  hold_headers["Idempotency-Key"] = "wrk-" .. id .. "-" .. n .. "-" .. math.random(1000000000)
  return wrk.format("POST", "/holds", hold_headers,
    '{"poolRef":"' .. pool .. '","need":"ipv","household":' .. household .. '}')
end

function response(status, headers, body)
  if status == 201 then
    h201 = h201 + 1
    local ref = body:match('^{"ref":"([^"]+)"')
    local hot = body:find('"place":{"ref":"hot-', 1, true) ~= nil
    if ref and (hot or math.random() < COLD_RELEASE) then table.insert(pending, ref) end
  elseif status == 409 then
    h409 = h409 + 1
  elseif status == 200 and body:find('"state":"released"', 1, true) then
    r200 = r200 + 1
  elseif status == 200 then
    hother = hother + 1
  else
    rother = rother + 1
  end
end

function done(summary, latency, requests)
  local t = {0, 0, 0, 0, 0}
  for _, thread in ipairs(threads) do
    t[1] = t[1] + thread:get("h201")
    t[2] = t[2] + thread:get("h409")
    t[3] = t[3] + thread:get("hother")
    t[4] = t[4] + thread:get("r200")
    t[5] = t[5] + thread:get("rother")
  end
  local e = summary.errors
  io.write(string.format("ABRI_COUNTS %%d %%d %%d %%d %%d %%d %%d %%d %%d\n",
    t[1], t[2], t[3], t[4], t[5], summary.duration,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def _lua(value: Any) -> str:
    if isinstance(value, list):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid Lua string literal here
    return repr(value)


@dataclass(frozen=True)
class WrkRun:
    seconds: float
    holds_201: int
    holds_409: int
    released: int
    unexpected: int  # any other answer (a 5xx, a 422, a 200 that is not a release...)
    socket_errors: int
    p50_ms: float  # over holds and releases together (wrk does not tell them apart)
    p99_ms: float
    cpu_s: float  # wrk's own CPU time (user + system)

    @property
    def answered_per_s(self) -> float:
        return (self.holds_201 + self.holds_409) / self.seconds

    @property
    def requests(self) -> int:
        return self.holds_201 + self.holds_409 + self.released + self.unexpected


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    port: int,
    token: str,
    *,
    hot_refs: list[str],
    cold_refs: list[str],
    hot_share: float,
    cold_release: float,
    family_share: float,
    one: dict[str, Any],
    two: dict[str, Any],
    seed: int,
    clients: int,
    duration: float,
) -> WrkRun:
    script = _SCRIPT % {
        "hots": _lua(hot_refs),
        "colds": _lua(cold_refs),
        "hot_share": repr(hot_share),
        "cold_release": repr(cold_release),
        "family_share": repr(family_share),
        "seed": repr(seed),
        "one": _lua(json.dumps(one, separators=(",", ":"))),
        "two": _lua(json.dumps(two, separators=(",", ":"))),
        "token": _lua(token),
    }
    with tempfile.TemporaryDirectory(prefix="abri-wrk-") as tmp:
        path = Path(tmp) / "holds.lua"
        path.write_text(script)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{clients}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "-s",
                str(path),
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=duration + 60,
        )
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("ABRI_COUNTS ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    h201, h409, other, r200, rother, dur_us, errors, p50, p99 = (int(x) for x in line.split()[1:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WrkRun(
        seconds=dur_us / 1e6 if dur_us else wall,
        holds_201=h201,
        holds_409=h409,
        released=r200,
        unexpected=other + rother,
        socket_errors=errors,
        p50_ms=p50 / 1000,
        p99_ms=p99 / 1000,
        cpu_s=cpu,
    )
