"""One answer generated in a worker thread and handed to the event loop: as one JSON reply or
as server-sent events, stopped when the client goes away or the time limit passes."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import Request

from qa.answer.pipeline import QA, Event
from qa.errors import QAError
from qa.serve.limits import GenerationSlots
from qa.types import Message

log = logging.getLogger("qa.serve")
POLL_S = 0.5  # how often a waiting request checks for a disconnected client
KEEPALIVE_S = 15.0  # SSE comment while nothing else is sent (proxies close idle streams)
START_TIMEOUT_S = 30.0  # a generation whose response never starts gives its slot back
INTERNAL_ERROR = "answering failed (an internal error; the server log has the details)"


class Generation:
    """One answer generated in a worker thread; events reach the event loop through a queue."""

    def __init__(self, qa: QA, question: str, history: list[Message], top_k: int | None,
                 slots: GenerationSlots, seconds: float) -> None:
        self.qa, self.question, self.history, self.top_k = qa, question, history, top_k
        self.slots, self.seconds = slots, seconds
        self.deadline = time.monotonic() + seconds
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.stop, self.attached = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="qa-api-generation", daemon=True)
        self.thread.start()

    def _put(self, kind: str, payload: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, payload))
        except RuntimeError:  # the event loop has closed (server shutting down)
            self.stop.set()

    def _timeout(self) -> tuple[int, str]:
        return 504, f"the answer took longer than {self.seconds:g} s and was stopped"

    def _run(self) -> None:
        try:
            if not self.attached.wait(START_TIMEOUT_S):
                return
            events = self.qa.stream(self.question, self.history, self.top_k)
            try:
                for event in events:
                    if self.stop.is_set():
                        break
                    if time.monotonic() > self.deadline:
                        self._put("error", self._timeout())
                        break
                    self._put("event", event)
            finally:
                events.close()  # stops the model (the generator's iterator is closed)
        except QAError as exc:  # meant for the user: its message and status
            self._put("error", (exc.http_status, str(exc)))
        except Exception:  # a bug: logged in full, no internals in the reply
            log.exception("answering %r failed", self.question)
            self._put("error", (500, INTERNAL_ERROR))
        finally:
            self.slots.release()
            self._put("end", None)

    async def events(self, request: Request) -> AsyncIterator[tuple[str, Any]]:
        """('event', Event), ('error', (status, message)) or ('tick', None) while waiting;
        leaving the loop early (a disconnect, a cancelled task) stops the generation."""
        self.attached.set()
        try:
            while True:
                try:
                    kind, payload = await asyncio.wait_for(self.queue.get(), POLL_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    if time.monotonic() > self.deadline + 1.0:  # the model itself is stuck
                        yield "error", self._timeout()
                        return
                    yield "tick", None
                    continue
                if kind == "end":
                    return
                yield kind, payload
        finally:
            self.stop.set()


def _sse(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


KEEPALIVE = ": keep-alive\n\n"  # an SSE comment: keeps proxies from closing a quiet stream


async def paced(generation: Generation, request: Request) -> AsyncIterator[tuple[str, Any]]:
    """The generation's events without its ticks, with ("keepalive", None) wherever nothing
    was sent for KEEPALIVE_S seconds."""
    last = time.monotonic()
    async for kind, payload in generation.events(request):
        if kind == "tick":
            if time.monotonic() - last >= KEEPALIVE_S:
                last = time.monotonic()
                yield "keepalive", None
            continue
        last = time.monotonic()
        yield kind, payload


async def sse_stream(generation: Generation, request: Request) -> AsyncIterator[str]:
    """token, citation, done and error events, with keep-alive comments while waiting."""
    async for kind, payload in paced(generation, request):
        if kind == "keepalive":
            yield KEEPALIVE
            continue
        if kind == "error":
            yield _sse("error", {"error": payload[1], "status": payload[0]})
            return
        event: Event = payload
        if event.kind == "token":
            yield _sse("token", {"text": event.text})
        elif event.answer is not None:
            for citation in event.answer.citations:
                yield _sse("citation", asdict(citation))
            yield _sse("done", event.answer.to_dict())
