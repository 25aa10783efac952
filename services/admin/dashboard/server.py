"""The dashboard's HTTP server inside the admin process: started by the admin service's `build`, stopped
with the process (its exit stack)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from aiohttp import web

from services.admin.dashboard.views import Dashboard
from services.runtime.settings import ConfigurationError

logger = logging.getLogger(__name__)


async def start(
    dashboard: Dashboard,
    *,
    host: str,
    port: int,
    port_file: str | None,
    exit_stack: contextlib.AsyncExitStack,
) -> int:
    """Serves `dashboard` on host:port (0: a free port, written to `port_file`); → the port."""
    runner = web.AppRunner(dashboard.application(), access_log=None, handle_signals=False)
    await runner.setup()
    exit_stack.push_async_callback(runner.cleanup)
    # The gRPC host's notation (`[::]`) without its brackets, which sockets do not take.
    site = web.TCPSite(runner, host.strip("[]"), port, shutdown_timeout=2.0)
    try:
        await site.start()
    except OSError as error:
        raise ConfigurationError(f"the dashboard cannot listen on {host}:{port} ({error.strerror})") from None
    bound = port
    for address in runner.addresses:  # (host, port, ...) of each bound socket
        bound = int(address[1])
    if port_file:
        temporary = Path(port_file + ".tmp")
        temporary.write_text(str(bound))  # noqa: ASYNC240 - once, at start
        temporary.replace(port_file)  # noqa: ASYNC240 - once, at start
    logger.info("dashboard serving", extra={"port": bound, "path": "/api/bull-board/"})
    return bound
