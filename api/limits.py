"""Limits that protect the service: request body size (413) and concurrent work (429)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from earlyrank.api.errors import ApiError, error_response


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"body: larger than the {limit}-byte limit; send fewer or "
                    f"shorter documents")


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes`: at once by Content-Length, else by counting the streamed bytes.

    The streamed check raises from `receive`; FastAPI lets HTTP exceptions through its body reading, so the
    app's error handler turns it into the usual JSON error.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            error = _too_large(self.max_bytes)
            await error_response(413, error.error_type, str(error.detail))(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _too_large(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except ApiError as error:  # raised where no handler catches it (e.g. outside a route)
            if started or error.status_code != 413:
                raise
            await error_response(413, error.error_type, str(error.detail))(scope, receive, send)


class WorkLimiter:
    """At most `capacity` requests doing work at once; the next one is refused at once with a 429.

    Used only from the event loop thread, so a plain counter is safe.
    """

    def __init__(self, capacity: int, retry_after_seconds: int = 1):
        self.capacity = capacity
        self.retry_after_seconds = retry_after_seconds
        self.in_flight = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the `capacity` work slots for the ``with`` block; ApiError 429 (with Retry-After, in seconds)
        when none is free."""
        if self.in_flight >= self.capacity:
            raise ApiError(429, "overloaded", f"server busy: {self.capacity} requests already in progress; "
                           f"retry after {self.retry_after_seconds} s",
                           headers={"Retry-After": str(self.retry_after_seconds)})
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
