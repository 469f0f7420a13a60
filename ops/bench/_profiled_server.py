"""``uvicorn --factory api.app:create_app`` under cProfile (benchmarks only).

uvicorn re-raises SIGTERM after its graceful shutdown, which would kill ``python -m cProfile``
before it writes its file; here a SIGTERM only asks the server to stop, then the profile is
dumped. Usage: ``python -m ops.bench._profiled_server PORT OUT.prof``.
"""

from __future__ import annotations

import contextlib
import cProfile
import signal
import sys
from collections.abc import Iterator

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(*_: object) -> None:
            self.should_exit = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        yield


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    config = uvicorn.Config(
        "api.app:create_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    prof = cProfile.Profile()
    prof.enable()
    try:
        _Server(config).run()
    finally:
        prof.disable()
        prof.dump_stats(out)


if __name__ == "__main__":
    main()
