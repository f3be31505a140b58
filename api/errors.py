"""One error shape for every 4xx and 5xx: ``{"error": message, "error_type": kind, "detail": [...]}``.

`error` is one sentence naming the field and the problem; `detail` lists every problem as
``{"loc": [...], "msg": ..., "type": ...}`` (empty when there is nothing per field to say).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger("earlyrank.api")

_TYPES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
          415: "unsupported_media_type", 422: "validation_error", 429: "overloaded", 503: "not_ready",
          504: "timeout"}


# Tags of the tagged unions in request schemas (string or object documents); kept out of field names.
UNION_TAGS = ("string-document", "object-document")


class ApiError(HTTPException):
    """An HTTP error with an `error_type` and per-field `errors`; FastAPI passes HTTPExceptions through."""

    def __init__(self, status_code: int, error_type: str, message: str, errors: Sequence[dict] = (),
                 headers: dict[str, str] | None = None):
        super().__init__(status_code, message, headers)
        self.error_type = error_type
        self.errors = list(errors)


def invalid(loc: Sequence[str | int], message: str, kind: str = "value_error") -> ApiError:
    """A 422 for one field, shaped like a validation error: ``invalid(("body", "query"), "too long")``."""
    return ApiError(422, "validation_error", f"{field_name(loc)}: {message}",
                    [{"loc": list(loc), "msg": message, "type": kind}])


def field_name(loc: Sequence[Any]) -> str:
    """``("body", "documents", 3, "text")`` -> ``documents[3].text``; the body itself is ``body``."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def printable(text: str) -> str:
    """`text` with anything that is not valid UTF-8 (a lone surrogate from the request) written as ``\\udXXX``,
    so an error that quotes a bad field name can still be sent."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(message: str, error_type: str, detail: Sequence[dict] = ()) -> dict:
    """The JSON error body ``{"error": message, "error_type": ..., "detail": [...]}``, the message and each detail's
    `loc` and `msg` made sendable by `printable`."""
    detail = [{**d, "loc": [printable(p) if isinstance(p, str) else p for p in d.get("loc", ())],
               "msg": printable(str(d.get("msg", "")))} for d in detail]
    return {"error": printable(message), "error_type": error_type, "detail": detail}


def error_response(status: int, error_type: str, message: str, detail: Sequence[dict] = (),
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON response with status `status`, `error_body` and any `headers` (e.g. Retry-After)."""
    return JSONResponse(error_body(message, error_type, detail), status_code=status, headers=headers)


def _describe(error: dict) -> str:
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        return f"body: malformed JSON at character {error['loc'][-1]} ({reason})"
    # A tagged union puts the member's tag into the location; the field is what matters.
    loc = [p for p in error.get("loc", ()) if p not in UNION_TAGS]
    return f"{field_name(loc)}: {_message(error) or 'invalid'}"


def _message(error: dict) -> str:
    """Pydantic's message without the "Value error, " it puts before the text of our own validators' errors."""
    return str(error.get("msg", "")).removeprefix("Value error, ")


def _clean(error: dict) -> dict:
    """Keep what a client needs; drop `input` (it may be a 20 kB document) and unserialisable `ctx`."""
    return {"loc": list(error.get("loc", ())), "msg": _message(error), "type": str(error.get("type"))}


def _whole_body(error: dict, content_type: str) -> dict:
    """A body that is not a JSON object at all: pydantic says "Input should be a valid dictionary or object to
    extract fields from", which names neither the usual cause (a body not sent as JSON: curl's -d sends
    application/x-www-form-urlencoded) nor what to send."""
    if tuple(error.get("loc", ())) != ("body",) or error.get("type") not in ("model_attributes_type", "dict_type"):
        return error
    if "json" not in content_type.lower():
        msg = (f"send the body as a JSON object with the header 'content-type: application/json' (this request's "
               f"content-type: {content_type or 'none'})")
    else:
        msg = "must be a JSON object ({...}) with the fields this endpoint documents (see /docs)"
    return {**error, "msg": msg}


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    errors = [_whole_body(dict(e), content_type) for e in exc.errors()]
    messages = list(dict.fromkeys(_describe(e) for e in errors))
    message = "; ".join(messages[:3]) + (f"; and {len(messages) - 3} more" if len(messages) > 3 else "")
    return error_response(422, "validation_error", message or "invalid request", [_clean(e) for e in errors])


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.error_type, str(exc.detail), exc.errors, exc.headers)
    if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
        # FastAPI's "error parsing the body" when json.loads ran out of stack: no request here nests deeply.
        message = "body: JSON nested too deeply to parse; no field of this API nests more than a few levels"
        return error_response(422, "validation_error", message,
                              [{"loc": ["body"], "msg": "JSON nested too deeply", "type": "json_too_deep"}])
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
        # FastAPI's "error parsing the body": bytes that are not UTF-8 text cannot be JSON either.
        reason = "not UTF-8 text" if isinstance(exc.__cause__, UnicodeDecodeError) else str(exc.__cause__)
        return error_response(422, "validation_error", f"body: malformed JSON ({reason})",
                              [{"loc": ["body"], "msg": f"malformed JSON ({reason})", "type": "json_invalid"}])
    kind = _TYPES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"{request.url.path}: no such endpoint"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, kind, message, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", f"internal error ({type(exc).__name__}); see the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Give `app` one error shape: handlers for validation errors (422), HTTP errors (ApiError included) and anything
    unexpected (500, logged with its traceback)."""
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
