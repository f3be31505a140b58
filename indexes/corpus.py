"""Read a corpus file (JSON lines: `_id`, `text`, optional `title` and `metadata`) into `Document`s.

Every malformed line raises `DatasetError` naming the file, the line number and the field; nothing
half-loaded is ever returned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from earlyrank.indexes.types import Document


class DatasetError(ValueError):
    """A data-set file is missing or malformed."""


def json_lines(path: Path, check: bool = True) -> Iterator[tuple[int, dict]]:
    """(line number from 1, object) for each non-blank line of a JSON-lines file; a byte-order mark is dropped.
    DatasetError naming the file and line for a missing file, bytes that are not UTF-8, bad JSON or a line that is not
    an object."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (BEIR layout needs corpus.jsonl and queries.jsonl)")
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:  # decoded line by line, so that a bad byte is reported with its line
                line = raw.decode("utf-8").removeprefix("\ufeff")
            except UnicodeDecodeError as e:
                raise DatasetError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[e.start]:02x})") from None
            if "\x00" in line:  # as document_files reads any text file: UTF-16 without a byte-order mark
                raise DatasetError(f"{path}:{number}: holds NUL bytes, so it is not UTF-8 text (UTF-16 without a "
                                   f"byte-order mark?); save it as UTF-8")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{number}: not valid JSON ({e.msg})") from None
            except RecursionError:
                raise DatasetError(f"{path}:{number}: nested more than {MAX_NESTING} levels deep") from None
            if not isinstance(record, dict):
                raise DatasetError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            if check:
                check_unicode(path, number, record)
            yield number, record


MAX_NESTING = 32  # levels of objects and lists in one record: the service's JSON encoder stops at a few hundred


def nesting(value: object) -> int:
    """How many levels of objects and lists `value` holds (a string or number: 0)."""
    deepest, level = 0, [(value, 0)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            level.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def record_problem(record: dict) -> str | None:
    """What stops `record` from being stored and served (see `check_unicode`), in words; None if nothing."""
    if nesting(record) > MAX_NESTING:
        return f"nested more than {MAX_NESTING} levels deep"
    try:
        json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        return ("holds a string that is not valid Unicode (a lone surrogate such as \\ud83d, half of an emoji); fix "
                "or drop it")
    except ValueError:
        return "holds NaN or Infinity, which JSON does not allow; write null or a number"
    return None


def check_unicode(path: Path, number: int, record: dict) -> None:
    """DatasetError naming the file and line if a value of `record` (text, title, id, metadata, keys) cannot be
    stored and served: a string that is not valid Unicode (JSON can spell a lone surrogate, ``"\\ud83d"``, which
    no file, tokenizer or model takes, and which failed only after the whole corpus was encoded, or with a
    traceback), NaN or Infinity (not JSON: they were served as null), or nesting deeper than `MAX_NESTING`."""
    if problem := record_problem(record):
        raise DatasetError(f"{path}:{number}: {problem}")


def string_field(path: Path, number: int, record: dict, name: str, required: bool = True) -> str:
    """The string field `name` of `record` (line `number` of `path`); "" for an optional field that is absent or null.
    DatasetError naming file, line and field if the value is not a string (or is missing when required) or a required
    ``_id`` is empty."""
    value = record.get(name)
    if value is None and not required:
        return ""
    if name == "_id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # as a .jsonl file of documents reads it
    if not isinstance(value, str) or (required and name == "_id" and not value):
        raise DatasetError(f"{path}:{number}: field {name!r} must be a non-empty string, got {value!r}")
    return value


def load_corpus(path: str | Path, check: bool = True) -> list[Document]:
    """Read corpus.jsonl (`_id`, `text`, optional `title` and `metadata` object); ids must be unique.

    Any other field is kept as metadata too, merged over the `metadata` object, as a .jsonl file of documents is
    read (`indexes.document_files`): the same rows in a BEIR folder once lost them, so filters matched nothing.
    `check` refuses records that cannot be stored and served (`check_unicode`); an index reads its own copy without
    it, so that one written before the check still loads."""
    path = Path(path)
    docs: list[Document] = []
    seen: set[str] = set()
    for number, record in json_lines(path, check):
        doc_id = string_field(path, number, record, "_id")
        if doc_id in seen:
            raise DatasetError(f"{path}:{number}: duplicate document id {doc_id!r}")
        seen.add(doc_id)
        text = string_field(path, number, record, "text")
        title = string_field(path, number, record, "title", required=False)
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise DatasetError(f"{path}:{number}: field 'metadata' must be an object, got {metadata!r}")
        metadata = metadata | {k: v for k, v in record.items() if k not in ("_id", "text", "title", "metadata")}
        docs.append(Document(id=doc_id, text=text, title=title, metadata=metadata))
    if not docs:
        raise DatasetError(f"{path}: the corpus is empty")
    return docs
