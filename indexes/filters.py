"""Metadata filters: recall only from the documents whose metadata matches, e.g. ``{"category": "billing"}``.

A filter is an object of field names to values. A document matches when every field matches (AND); a field
matches when the document's value equals the filter's value, or any of them when the filter gives a list (OR):
``{"category": ["billing", "delivery"], "year": 2024}``. What equal means:

- a value is a string, number, boolean or null; an object, an empty list or a list inside a list is refused
  (`FilterError`), as are NaN and infinity (they equal nothing);
- equality is JSON's, by type: 2 equals 2.0, but not "2" and not true. A CSV or TSV column is text, so its
  ``year`` matches ``"2024"``, not ``2024``;
- a document whose value is a list matches when any item does: ``{"tags": "cards"}`` matches
  ``"tags": ["cards", "checkout"]``; a nested object in a document's metadata matches nothing;
- a field name is a top-level metadata key, taken literally (``"a.b"`` is the key ``a.b``, not a path);
- a field no document has is not an error: it matches nothing, as a value no document has does. Metadata is
  per document, not a schema: a field may be on some documents only, or on none yet of an index that grows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from earlyrank.indexes.types import Document

Scalar = str | int | float | bool | None
_Key = tuple[str, Any]  # a value with its JSON type, so that true and 1 are different keys (in Python, True == 1)


class FilterError(ValueError):
    """A filter that is not an object of field names to values; the message names the field and the problem."""


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def _key(value: object) -> _Key | None:
    """The value's match key, or None for a value that matches nothing (an object or a list)."""
    if isinstance(value, bool):  # before int: bool is a subclass of it
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)  # 2 and 2.0 hash and compare equal
    if isinstance(value, str):
        return ("string", value)
    return ("null", None) if value is None else None


def _problem(value: object) -> str | None:
    """Why `value` cannot be one of a field's filter values, or None if it can."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} equals nothing; give a finite number"
    if isinstance(value, dict):
        return ("a value cannot be an object (nested fields cannot be filtered); give a string, number, "
                "boolean or null, or a list of them")
    if _key(value) is None:
        return f"a value must be a string, number, boolean or null, or a list of them; got {_json_type(value)}"
    return None


@dataclass(frozen=True)
class MetadataFilter:
    """A parsed filter: each field with the values it may take (at least one each); no conditions admits all."""

    conditions: tuple[tuple[str, tuple[Scalar, ...]], ...] = ()

    @classmethod
    def parse(cls, spec: object) -> MetadataFilter:
        """The filter `spec` (a mapping of field to value or list of values; a MetadataFilter is returned as it
        is, None is no filter). FilterError naming the field: ``field 'year': a value cannot be an object ...``."""
        if spec is None:
            return cls()
        if isinstance(spec, MetadataFilter):
            return spec
        if not isinstance(spec, Mapping):
            raise FilterError(f"must be an object of field names to values, got {_json_type(spec)}")
        conditions = []
        for name, value in spec.items():
            if not isinstance(name, str):
                raise FilterError(f"field names must be strings, got {name!r}")
            values = value if isinstance(value, list) else [value]
            if not values:
                raise FilterError(f"field {name!r}: an empty list matches nothing; leave the field out instead")
            for item in values:
                problem = ("a list inside a list; a list's items are strings, numbers, booleans or null"
                           if isinstance(item, list) else _problem(item))
                if problem:
                    raise FilterError(f"field {name!r}: {problem}")
            conditions.append((name, tuple(values)))
        return cls(tuple(conditions))


FilterSpec = Mapping[str, Any] | MetadataFilter | None


class MetadataIndex:
    """Where each value of each metadata field occurs: field -> value -> corpus positions (sorted).

    A field's map is built on its first use by a filter (one pass over the documents: about 0.1 s for 100,000);
    then a filter costs one boolean per document and condition, and the positions of the values it names. Two
    requests using a new field at once may both build its map; either result is the same.
    """

    def __init__(self, docs: Sequence[Document]):
        self._docs = docs
        self._fields: dict[str, dict[_Key, np.ndarray]] = {}

    def _field(self, name: str) -> dict[_Key, np.ndarray]:
        found = self._fields.get(name)
        if found is None:
            positions: dict[_Key, list[int]] = {}
            for position, doc in enumerate(self._docs):
                if name in doc.metadata:
                    value = doc.metadata[name]
                    items = value if isinstance(value, list) else [value]
                    for key in {k for k in map(_key, items) if k is not None}:
                        positions.setdefault(key, []).append(position)
            found = {key: np.asarray(p, dtype=np.int64) for key, p in positions.items()}
            self._fields[name] = found
        return found

    def positions(self, flt: MetadataFilter) -> np.ndarray:
        """The sorted corpus positions of the documents matching every condition of `flt` (all, without any)."""
        matched = np.ones(len(self._docs), dtype=bool)
        for name, values in flt.conditions:
            # One boolean row per condition: unions and intersections cost O(documents), without sorting.
            field = self._field(name)
            these = np.zeros(len(self._docs), dtype=bool)
            for key in {_key(v) for v in values}:
                if key in field:
                    these[field[key]] = True
            matched &= these
        return np.flatnonzero(matched)

    def allowed(self, spec: FilterSpec) -> np.ndarray | None:
        """The positions a search with filter `spec` may return, or None when it has no condition (all may).
        FilterError for a filter that is not one (see `MetadataFilter.parse`)."""
        flt = MetadataFilter.parse(spec)
        return self.positions(flt) if flt.conditions else None
