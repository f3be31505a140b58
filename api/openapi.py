"""The app's /openapi.json says the limits its settings set, so that the schema refuses what the server refuses.

A request field whose limit is a setting is marked ``json_schema_extra=limit(maxLength="max_query_chars")``;
`install_openapi` serves the schema with each mark replaced by the setting's value (``"maxLength": 2000``).
A keyword on a nullable field stands beside its ``anyOf`` and so holds for the non-null value only (JSON Schema's
``maxLength`` constrains strings alone, ``maximum`` numbers, ``maxItems`` arrays).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from earlyrank.engine.settings import Settings

LIMIT = "x-earlyrank-limit"
# Text with a letter or digit, as `engine.rerank.has_content` reads it (Python's Unicode `\w`). Written with
# Unicode property escapes because JSON Schema's `\w` is ECMA-262's, ASCII-only, and would refuse "東京".
CONTENT_PATTERN = r"[\p{L}\p{N}_]"


def limit(**keywords: str) -> dict[str, Any]:
    """``json_schema_extra`` for a field whose JSON Schema `keywords` take the values of the named settings:
    ``Field(min_length=1, json_schema_extra=limit(maxItems="max_documents"))``."""
    unknown = [name for name in keywords.values() if name not in Settings.model_fields]
    if unknown:
        raise ValueError(f"no such setting: {', '.join(unknown)}")
    return {LIMIT: keywords}


def with_limits(node: Any, settings: Settings) -> Any:
    """A copy of `node` (an OpenAPI document or any part of it) with every `limit` mark replaced by its keywords,
    valued from `settings`."""
    if isinstance(node, list):
        return [with_limits(item, settings) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: with_limits(value, settings) for key, value in node.items() if key != LIMIT}
    out.update({keyword: getattr(settings, name) for keyword, name in node.get(LIMIT, {}).items()})
    return out


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve `app`'s OpenAPI document (built once, on first use, as FastAPI builds it) with `settings`' limits."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_limits(build(), settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
