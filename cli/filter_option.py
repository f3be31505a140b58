"""The ``--filter FIELD=VALUE`` option of search and ask: recall only documents whose metadata matches."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from earlyrank.cli.common import fail

FilterOption = Annotated[list[str] | None, typer.Option(
    "--filter", metavar="FIELD=VALUE", help=(
        "Only documents whose metadata FIELD equals VALUE (text). FIELD:=JSON gives a number, true, false, null "
        "or a list (any of). Repeatable: different fields must all match, a repeated field matches any of its "
        "values."))]


def filter_spec(options: list[str] | None) -> dict[str, Any] | None:
    """The filter the ``--filter`` options ask for, checked, or None without any; a one-line error otherwise.

    ``["category=billing", "category=delivery", "year:=2024"]`` gives
    ``{"category": ["billing", "delivery"], "year": 2024}`` (as httpie reads ``=`` and ``:=``).
    """
    from earlyrank.indexes.filters import FilterError, MetadataFilter

    if not options:
        return None
    values: dict[str, list] = {}
    for option in options:
        name, equals, raw = option.partition("=")
        as_json = name.endswith(":")
        name = name.removesuffix(":") if as_json else name
        if not equals or not name:
            fail(f"--filter {option!r}: write FIELD=VALUE, or FIELD:=JSON for a number, true, false, null or a list")
        try:
            value = json.loads(raw) if as_json else raw
        except ValueError:
            fail(f"--filter {option!r}: {raw!r} is not JSON; write FIELD=VALUE to match it as text")
        values.setdefault(name, []).extend(value if isinstance(value, list) else [value])
    # One value stands alone; a list of one list stays a list, for the filter to refuse.
    spec = {name: found[0] if len(found) == 1 and not isinstance(found[0], list) else found
            for name, found in values.items()}
    try:
        MetadataFilter.parse(spec)
    except FilterError as e:
        fail(f"--filter: {e}")
    return spec
