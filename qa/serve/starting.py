"""The server's first minutes: an ASGI app that is up at once and says what start-up is doing
(opening or rebuilding the index, building the app) until the real app is ready, then hands
every request to it."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

log = logging.getLogger("qa.serve.starting")
RETRY_S = 5
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Starting…</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}}
.state{{color:#555}}</style></head>
<body><h1>Starting…</h1><p>The question-answering app is getting ready; this page reloads
by itself.</p><p class="state" id="qa-starting">{state}</p></body></html>
"""



class StartingApp:
    """Serves a start-up page at `/`, `/api/health` and 503s elsewhere while `build()` runs
    in a thread, then runs the built app's lifespan and forwards everything to it.

    `state()` says what start-up is doing; `failed(exc)` is called (in the event loop) when
    `build()` raises, and `error` keeps the exception."""

    def __init__(self, build: Callable[[], FastAPI], state: Callable[[], str],
                 failed: Callable[[BaseException], None], model: str = "") -> None:
        self.build = build
        self.state = state
        self.failed = failed
        self.model = model
        self.app: FastAPI | None = None
        self.error: BaseException | None = None
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await self._starting(scope)(scope, receive, send)
        else:  # a websocket before the app exists: "try again later"
            await send({"type": "websocket.close", "code": 1013})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._task = asyncio.get_running_loop().create_task(self._start())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._task is not None:
                    self._task.cancel()  # a build still running is left to its daemon thread
                await self._stack.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        built: asyncio.Future[FastAPI] = loop.create_future()

        def run() -> None:
            outcome: tuple[Callable[[Any], None], Any]
            try:
                outcome = (built.set_result, self.build())
            except Exception as exc:  # noqa: BLE001 - handed to the event loop below
                outcome = (built.set_exception, exc)
            with contextlib.suppress(RuntimeError):  # the server stopped (loop closed) meanwhile
                loop.call_soon_threadsafe(_settle, built, *outcome)

        # A daemon thread, so that stopping the server during a long build does not wait for it.
        threading.Thread(target=run, name="qa-start-up", daemon=True).start()
        try:
            app = await built
            await self._stack.enter_async_context(app.router.lifespan_context(app))
        except Exception as exc:  # noqa: BLE001 - reported by failed(), the server stops
            log.error("start-up failed: %s", exc)
            self.error = exc
            self.failed(exc)
            return
        self.app = app

    def _starting(self, scope: Scope) -> Response:
        state = self.state() or "starting"
        path, method = scope.get("path", ""), scope.get("method", "GET")
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        if path == "/api/health" and method in ("GET", "HEAD"):
            return JSONResponse({"status": "starting", "state": state,
                                 "model": {"name": self.model, "state": "waiting for start-up",
                                           "ready": False}}, headers=headers)
        if path == "/" and method in ("GET", "HEAD"):
            return HTMLResponse(PAGE.format(state=html.escape(state)), headers=headers)
        return JSONResponse({"error": f"the app is starting ({state}); retry shortly"}, 503,
                            headers={**headers, "Retry-After": str(RETRY_S)})


def _settle(future: asyncio.Future[Any], setter: Callable[[Any], None], value: Any) -> None:
    if not future.cancelled():  # cancelled when the server stopped during the build
        setter(value)
