"""Run the service under uvicorn the way a supervisor expects: SIGTERM drains it (`api.shutdown`) and the process
exits with status 0; a failed load exits with status 3 (`STARTUP_FAILURE`), with any number of workers. Idle
client connections stay open `Settings.keep_alive_seconds`, longer than clients' own idle limits.

    serve(Settings(port=9000))
"""

from __future__ import annotations

import math
import signal
from types import FrameType

from starlette.types import ASGIApp

from earlyrank.api.app import STARTUP_FAILURE, create_app
from earlyrank.engine.settings import Settings

# uvicorn's own limit on the drain sits this far above the app's grace period: time to send the app's 503s.
BACKSTOP_SECONDS = 2


def exit_cleanly(sig: int, frame: FrameType | None) -> None:
    """SIGTERM's handler outside uvicorn's: exit with status 0. uvicorn puts it back after its drain and then
    sends the signal again, which without it would end the process with -15."""
    raise SystemExit(0)


def serve(settings: Settings, app: ASGIApp | None = None) -> None:
    """Serve `app` (default `create_app(settings)`) on the settings' host and port until SIGTERM or SIGINT; with
    `settings.workers` above 1, each worker process builds its own app from the environment
    (`api.app.app_from_env`). SystemExit(3) if the index and model could not be loaded."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    signal.signal(signal.SIGTERM, exit_cleanly)
    backstop = math.ceil(settings.shutdown_grace_seconds) + BACKSTOP_SECONDS
    if settings.workers == 1:
        uvicorn.run(app or create_app(settings), host=settings.host, port=settings.port,
                    timeout_graceful_shutdown=backstop, timeout_keep_alive=settings.keep_alive_seconds)
        return
    # uvicorn.run's own multi-process branch, keeping the supervisor to read its workers' exit statuses: it
    # stops once a worker exits with STARTUP_FAILURE, but then exits with status 0 itself.
    config = uvicorn.Config("earlyrank.api.app:app_from_env", factory=True, workers=settings.workers,
                            host=settings.host, port=settings.port, timeout_graceful_shutdown=backstop,
                            timeout_keep_alive=settings.keep_alive_seconds)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        raise SystemExit(STARTUP_FAILURE)
