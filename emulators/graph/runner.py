"""Run the emulator in-process: a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from aiohttp import web

from ..stop_signals import start_thread
from .admin import AdminClient
from .app import GraphEmulatorApp
from .config import EmulatorConfig

#: On stop, how long in-flight requests get to finish before they are cancelled (aiohttp's default is 60 s).
SHUTDOWN_TIMEOUT_SECONDS = 0.5


class GraphEmulator:
    """In-process Graph Backup Storage emulator.

    >>> with GraphEmulator(seed=7, drives=50).start() as emu:
    ...     emu.base_url  # 'http://127.0.0.1:PORT/v1.0'
    """

    def __init__(self, config: EmulatorConfig | None = None, **settings: Any) -> None:
        self.config = config or EmulatorConfig()
        if settings:
            self.config.update(settings)
        self.graph = GraphEmulatorApp(self.config)
        self.host = "127.0.0.1"
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._admin: AdminClient | None = None

    @property
    def root_url(self) -> str:
        """``http://host:port`` (no version segment)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://host:port/v1.0``: the Graph base URL to give the SDK."""
        return f"{self.root_url}/v1.0"

    @property
    def beta_url(self) -> str:
        return f"{self.root_url}/beta"

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self.root_url)
        return self._admin

    def start(self, host: str = "127.0.0.1", port: int = 0) -> GraphEmulator:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self.host = host
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(host, port))
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        # The loop's thread never takes SIGINT/SIGTERM: they must reach the main thread (see stop_signals).
        self._thread = start_thread(threading.Thread(target=run, name="graph-emulator", daemon=True))
        ready.wait(30)
        if errors:
            self._thread = None
            raise errors[0]
        return self

    async def _serve(self, host: str, port: int) -> None:
        runner = web.AppRunner(
            self.graph.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._thread = None
        self._loop = None

    def __enter__(self) -> GraphEmulator:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
