"""Stopping as a supervisor expects: on SIGTERM the service drains, and `grace_seconds` later any request still
running is answered ``503 shutting_down`` (with Retry-After) in the error shape, not cut off.

uvicorn, on SIGTERM, stops accepting connections and waits for the open ones for at most its
`timeout_graceful_shutdown`; then it cancels what is left, and a cancelled request gets uvicorn's plain-text 500.
The lifespan's end comes only after all that, too late to answer in JSON. So the app watches the signal itself
(`Shutdown.attach` chains a handler in front of uvicorn's) and answers at the end of its own grace period, a
little before uvicorn's limit (`api.server`).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from earlyrank.api.errors import error_response

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Shutdown:
    """The service's stop: `begin()` (what SIGTERM and SIGINT do) sets `draining` and, `grace_seconds` later,
    `ended`; threads doing a request's work watch `ended` to stop early. Inert until `attach`ed to the lifespan's
    loop."""

    def __init__(self, grace_seconds: float, retry_after_seconds: int):
        self.grace_seconds = grace_seconds
        self.retry_after_seconds = retry_after_seconds
        self.draining = False
        self.ended = threading.Event()
        self.ended_future: asyncio.Future[None] | None = None  # what `ShutdownMiddleware` awaits
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}

    def attach(self, loop: asyncio.AbstractEventLoop, hook_signals: bool) -> None:
        """Start afresh on `loop` (the lifespan's); with `hook_signals` (only possible on the main thread), SIGTERM
        and SIGINT call `begin` and then the handler they had (uvicorn's, which stops accepting and waits for open
        connections)."""
        self._loop, self.ended_future = loop, loop.create_future()
        self.draining = False
        self.ended.clear()
        if hook_signals:
            self._previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
            for sig in SIGNALS:
                signal.signal(sig, self._on_signal)

    def detach(self) -> None:
        """The lifespan's end: put back the handlers `attach` replaced; from now on the service is draining (and the
        middleware, with nothing in flight to answer, lets requests through)."""
        for sig, handler in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, handler)
        self._previous = {}
        self.draining = True
        self.ended_future = None

    def begin(self) -> None:
        """Start draining, from any thread: `ended` follows `grace_seconds` later. Repeats change nothing."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._begin)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.begin()
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, frame)
        elif previous == signal.SIG_DFL:  # no server handles it: die of it, as without this handler
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    def _begin(self) -> None:
        if not self.draining and self._loop is not None:
            self.draining = True
            self._loop.call_later(self.grace_seconds, self._end)

    def _end(self) -> None:
        self.ended.set()
        if self.ended_future is not None and not self.ended_future.done():
            self.ended_future.set_result(None)

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the 503 that a request still running at the end of the grace period gets."""
        message = (f"shutting down: the request was still running {self.grace_seconds:g} s after the server was "
                   f"told to stop; retry it")
        response = error_response(503, "shutting_down", message,
                                  headers={"Retry-After": str(self.retry_after_seconds)})
        await response(scope, receive, send)


class ShutdownMiddleware:
    """Answers `Shutdown.answer`'s 503 for every HTTP request whose response has not started when the grace period
    ends. The work goes on in its thread until it notices `Shutdown.ended` (the rerank loops stop at their next
    chunk); anything it sends after that is dropped."""

    def __init__(self, app: ASGIApp, shutdown: Shutdown):
        self.app = app
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ended = self.shutdown.ended_future
        if scope["type"] != "http" or ended is None or ended.done():
            await self.app(scope, receive, send)
            return
        started = answered = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not answered:
                started = started or message["type"] == "http.response.start"
                await send(message)

        work = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        try:
            await asyncio.wait({work, ended}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the server's own limit ran out first
            work.cancel()
            raise
        if work.done() or started:
            await work
            return
        answered = True
        work.cancel()  # work waiting on a thread ends with the thread; its answer is dropped
        await self.shutdown.answer(scope, receive, send)
