"""Read the documents users have: a BEIR directory, a JSON lines, JSON, CSV or TSV file, or a folder of .txt,
.md, .html and .pdf files (one document per file).

`read_documents(path, fields)` picks the reader by the path; each reader yields `Document`s. Every problem is a
`DatasetError` naming the file, the line (a PDF's page) and the field, e.g. ``faq.csv:7: field 'text' is empty``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from earlyrank.indexes.corpus import MAX_NESTING, DatasetError, check_unicode, json_lines, load_corpus
from earlyrank.indexes.types import Document

ACCEPTED = ("a BEIR directory (corpus.jsonl), a .jsonl, .json, .csv or .tsv file, "
            "or a folder of .txt, .md, .html or .pdf files")


@dataclass(frozen=True)
class Fields:
    """Which fields of a JSON or CSV row hold the text, the id and the title.

    Id and title may be missing. `id` None reads "_id", else "id"; a row without one gets `content_id`, so
    indexing the same file again gives the same ids. A field named here (not left None) must be a CSV column,
    unless `optional` holds its role ("id", "title"): then a file or row without it reads the default
    (`earlyrank add` passes the index's own field options so, for files that have those columns and files that do
    not, while a field given on its command line stays required).
    """

    text: str = "text"
    id: str | None = None
    title: str | None = None
    optional: frozenset[str] = frozenset()  # of "id", "title"


def content_id(title: str, text: str) -> str:
    """A stable id for a document that has none: 16 hex digits of the SHA-256 of its title and text."""
    return hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()[:16]


def _field(where: str, record: dict, name: str, required: bool) -> str:
    value = record.get(name)
    if value is None or (value == "" and not required):
        if required:
            raise DatasetError(f"{where}: field {name!r} is missing")
        return ""
    if not isinstance(value, str):
        raise DatasetError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise DatasetError(f"{where}: field {name!r} is empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # JSON can spell a lone surrogate, which no file or model can take
        raise DatasetError(f"{where}: field {name!r} is not valid Unicode (a lone surrogate)") from None
    return value


def record_documents(path: Path, rows: Iterable[tuple[int, dict]], fields: Fields) -> Iterator[Document]:
    """Documents from (line number, row) pairs: every field but the text, id and title is kept as metadata
    (a "metadata" object is merged in); a repeated id, or a repeated title and text without ids, is refused."""
    first_line: dict[str, int] = {}
    # a field named with --id-field or --title-field that no record has yet (a misspelling, if none ever has)
    unseen = {role: name for role, name in (("id", fields.id), ("title", fields.title))
              if name is not None and role not in fields.optional}
    keys: dict[str, None] = {}
    for number, record in rows:
        where = f"{path}:{number}"
        for role in [r for r, name in unseen.items() if name in record]:
            del unseen[role]
        keys.update(dict.fromkeys(record))
        text = _field(where, record, fields.text, required=True)
        title_name = (fields.title if fields.title and (fields.title in record or "title" not in fields.optional)
                      else "title")
        title = _field(where, record, title_name, required=False)
        named = fields.id if fields.id and (fields.id in record or "id" not in fields.optional) else None
        id_name = named or ("_id" if "_id" in record else "id")
        given = record.get(id_name)
        given = str(given) if isinstance(given, int) and not isinstance(given, bool) else given
        doc_id = _field(where, {id_name: given}, id_name, required=False) or content_id(title, text)
        if doc_id in first_line:
            what = f"document id {doc_id!r}" if given else f"title and text (generated id {doc_id!r})"
            raise DatasetError(f"{where}: duplicate {what}, first on line {first_line[doc_id]}")
        first_line[doc_id] = number
        metadata = {k: v for k, v in record.items() if k not in (fields.text, title_name, id_name)}
        if isinstance(metadata.get("metadata"), dict):
            metadata = metadata.pop("metadata") | metadata
        yield Document(id=doc_id, text=text, title=title, metadata=metadata)
    if first_line and unseen:  # as a CSV header without the column is refused, not read as ids or titles missing
        role, name = next(iter(unseen.items()))
        raise DatasetError(f"{path}: no record has the field {name!r} given with --{role}-field (fields seen: "
                           f"{', '.join(list(keys)[:20])}); name the field with --{role}-field")


def _read_utf8(file: Path) -> str:
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DatasetError(f"{file}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x})") from None
    if "\x00" in text:  # valid UTF-8, but no text file holds NUL bytes: UTF-16 without a byte-order mark does
        line = raw.count(b"\n", 0, raw.index(b"\x00")) + 1
        raise DatasetError(f"{file}:{line}: holds NUL bytes, so it is not UTF-8 text (UTF-16 without a byte-order "
                           f"mark?); save it as UTF-8")
    return text


def jsonl_documents(path: Path, fields: Fields) -> Iterator[Document]:
    """One JSON object per line."""
    yield from record_documents(path, json_lines(path), fields)


def _after_space(text: str, pos: int) -> int:
    """The first position at or after `pos` that is not JSON whitespace."""
    while text[pos:pos + 1] in (" ", "\t", "\r", "\n"):
        pos += 1
    return pos


def _json_array(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    """The objects of a JSON array with the line each starts on, parsed one at a time to know it."""
    breaks = [m.start() for m in re.finditer("\n", text)]
    decoder = json.JSONDecoder()
    pos = _after_space(text, text.index("[") + 1)
    while text[pos:pos + 1] != "]":
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        except RecursionError:
            raise DatasetError(f"{path}:{bisect_right(breaks, pos) + 1}: nested more than {MAX_NESTING} levels "
                               f"deep") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{path}:{bisect_right(breaks, pos) + 1}: expected a JSON object, "
                               f"got {type(record).__name__}")
        check_unicode(path, bisect_right(breaks, pos) + 1, record)
        yield bisect_right(breaks, pos) + 1, record
        pos = _after_space(text, end)
        if text[pos:pos + 1] == ",":
            pos = _after_space(text, pos + 1)
        elif text[pos:pos + 1] != "]":
            raise DatasetError(f"{path}:{bisect_right(breaks, pos) + 1}: not valid JSON (expected ',' or ']')")
    if text[pos + 1:].strip():
        raise DatasetError(f"{path}:{bisect_right(breaks, pos) + 1}: not valid JSON (text after the array)")


def wrapped_array(path: Path, text: str, fields: Fields) -> None:
    """DatasetError if the whole file is one JSON object without the text field that holds a list of objects
    (``{"documents": [...]}``, an export's usual shape): it was reported as invalid JSON, or as a document
    missing its text."""
    try:
        whole = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return  # JSON lines, or broken, or nested too deep: json_lines says which line
    if isinstance(whole, dict) and fields.text not in whole:
        lists = [k for k, v in whole.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if lists:
            raise DatasetError(f"{path}: one JSON object whose {lists[0]!r} holds the documents; earlyrank reads a "
                               f"JSON array of documents, or one per line: write that list alone to a file (e.g. "
                               f"jq '.{lists[0]}' {path.name})")


def json_documents(path: Path, fields: Fields) -> Iterator[Document]:
    """A JSON array of objects or, if the file does not start with '[', JSON lines."""
    text = _read_utf8(path)
    if text.lstrip().startswith("{"):
        wrapped_array(path, text, fields)
    rows = _json_array(path, text) if text.lstrip().startswith("[") else json_lines(path)
    yield from record_documents(path, rows, fields)


def csv_documents(path: Path, fields: Fields, delimiter: str = ",") -> Iterator[Document]:
    """A CSV (or, with a tab `delimiter`, TSV) file whose first row names the columns.

    A TSV is written two ways: quoted as CSV is (Python's csv, pandas and spreadsheets quote a cell holding a quote
    mark or a line break), or with no quoting at all (IANA's text/tab-separated-values; MS MARCO's files), where a
    quote mark is text and a text may start with one. It is read quoted, unless that fails or makes a cell hold a
    line break followed by a tab (a quote left open swallowing the next rows): then it is read unquoted. A file of
    one column cannot tell the two apart, and is read quoted."""
    text = _read_utf8(path)
    if delimiter != "\t":
        rows = _rows(path, csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True), fields)
    else:
        try:
            rows = _rows(path, csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True), fields)
            # A quote left open swallows what follows it: a line break and then the next rows' tabs.
            quoted = not any("\n" in v and "\t" in v.split("\n", 1)[1] for _, row in rows for v in row.values())
        except DatasetError:
            quoted = False
        if not quoted:
            rows = _rows(path, csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True,
                                          quoting=csv.QUOTE_NONE), fields)
    yield from record_documents(path, rows, fields)


def _rows(path: Path, reader, fields: Fields) -> list[tuple[int, dict]]:
    """(line number, {column: value}) of each row of `reader` under its header row, checked against `fields`."""
    try:
        header = next(reader, None)
        if not header:
            raise DatasetError(f"{path}:1: no header row naming the columns (one must be {fields.text!r})")
        if repeated := next((c for i, c in enumerate(header) if c in header[:i]), None):
            raise DatasetError(f"{path}:1: column {repeated!r} appears twice in the header; give each its own name")
        for role, name in (("text", fields.text), ("id", fields.id), ("title", fields.title)):
            option = f"--{role}-field"
            if name is not None and name not in header and role not in fields.optional:
                raise DatasetError(f"{path}:1: field {name!r} is not a column of the header "
                                   f"({', '.join(header)}); name the column with {option}")
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DatasetError(f"{path}:{reader.line_num}: {len(values)} values, the header names "
                                   f"{len(header)} columns")
            rows.append((reader.line_num, dict(zip(header, values, strict=True))))
    except csv.Error as e:
        raise DatasetError(f"{path}:{reader.line_num}: not valid CSV ({e})") from None
    return rows


def _file_document(file: Path, doc_id: str, title: str, text: str) -> Document:
    if not text.strip():
        raise DatasetError(f"{file}: no text in the file")
    return Document(id=doc_id, text=text.strip(), title=title)


def text_document(file: Path, doc_id: str) -> Document:
    """A .txt or .md file: its text, titled by the file name."""
    return _file_document(file, doc_id, file.stem, _read_utf8(file))


# Elements whose text runs on within a line, as a browser shows it ("<b>war</b>ranty" is one word); every other
# element (p, li, td, summary, option, button, label, ...) starts a line of its own, so "<li>Red</li><li>Blue</li>"
# stays two words.
INLINE_ELEMENTS = frozenset({"a", "abbr", "acronym", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn",
                             "em", "font", "i", "ins", "kbd", "mark", "nobr", "output", "q", "rb", "rp", "rt", "ruby",
                             "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u", "var",
                             "wbr"})


def html_document(file: Path, doc_id: str) -> Document:
    """An HTML file's visible text (no scripts, styles or head), titled by its <title> or else the file name.
    Inline elements (`INLINE_ELEMENTS`) join their neighbours as shown; every other element is a line of its own."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(file.read_bytes(), "html.parser")  # bytes: it finds the encoding (BOM, <meta charset>)
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["head", "script", "style", "noscript", "template"]):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.name not in INLINE_ELEMENTS and "-" not in tag.name and ":" not in tag.name:  # custom ones run on
            tag.insert_before("\n")
            tag.insert_after("\n")
    lines = (" ".join(line.split()) for line in soup.get_text("").splitlines())
    return _file_document(file, doc_id, title or file.stem, "\n".join(line for line in lines if line))


def pdf_document(file: Path, doc_id: str) -> Document:
    """A PDF's text layer, page after page, titled by the file name (a scanned PDF has none: OCR it first)."""
    from pypdf import PdfReader

    try:
        pages = PdfReader(file).pages
    except Exception as e:  # pypdf raises many kinds on a broken or encrypted file; each is the file's fault
        raise DatasetError(f"{file}: not a readable PDF ({e})") from None
    texts = []
    for number, page in enumerate(pages, 1):
        try:
            texts.append(page.extract_text())
        except Exception as e:
            raise DatasetError(f"{file}: page {number}: its text cannot be read ({e})") from None
    return _file_document(file, doc_id, file.stem, "\n".join(texts))


# Python's csv refuses a field over 128 KiB by default; a document in a CSV can be longer.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

FILE_DOCUMENTS: dict[str, Callable[[Path, str], Document]] = {
    ".txt": text_document, ".md": text_document, ".html": html_document, ".htm": html_document,
    ".pdf": pdf_document}
ROW_DOCUMENTS: dict[str, Callable[[Path, Fields], Iterator[Document]]] = {
    ".jsonl": jsonl_documents, ".ndjson": jsonl_documents, ".json": json_documents, ".csv": csv_documents,
    ".tsv": lambda path, fields: csv_documents(path, fields, delimiter="\t")}


def visible(root: Path) -> Iterator[tuple[Path, Path]]:
    """(path, path relative to `root`) of everything under the folder `root` that is not hidden (no part of its
    relative path starts with "."), in path order; linked folders are listed, not entered."""
    for found in sorted(root.rglob("*")):
        relative = found.relative_to(root)
        if not any(part.startswith(".") for part in relative.parts):
            yield found, relative


def folder_documents(root: Path, id_root: Path | None = None) -> Iterator[Document]:
    """One document per .txt, .md, .html or .pdf file under `root`, subfolders included and hidden ones not,
    in path order; the id is the path relative to `root`, or with `id_root` (a folder above `root`) relative to
    that. A symbolic link is named where it lies, not where it points. Files of other types are passed over."""
    for file, relative in visible(root):
        reader = FILE_DOCUMENTS.get(file.suffix.lower())
        if reader and file.is_file():
            place = root.resolve().relative_to(id_root) / relative if id_root else relative
            yield reader(file, checked_id(place.as_posix(), file))


def checked_id(doc_id: str, file: Path) -> str:
    """`doc_id`, a file's name or path made an id; DatasetError if it is not UTF-8 (it could be neither stored
    nor named in a request)."""
    try:
        doc_id.encode("utf-8")
    except UnicodeEncodeError:
        shown = doc_id.encode("utf-8", "surrogateescape")
        raise DatasetError(f"{file.parent}: the file name {shown!r} is not UTF-8; rename the file") from None
    return doc_id


def id_root_for(path: Path, source: str | None) -> Path | None:
    """The folder an index was built from (`source`, as its manifest records it), if `path` lies inside it: files
    added from there must get the ids they got when the folder was indexed (``guide/setup.md``, not
    ``setup.md``), or an edited file would be added beside its old version. None otherwise."""
    if not source or not Path(source).is_dir():
        return None
    root = Path(source).resolve()
    where = path.parent.resolve() / path.name if path.is_file() else path.resolve()  # a linked file: where it lies
    return root if where != root and where.is_relative_to(root) else None


def files_beside_corpus(path: Path) -> list[str]:
    """The document files (.txt, .md, .html, .pdf) and files of rows, other than the BEIR files, under the folder
    `path` when it holds corpus.jsonl, relative to it: such a folder is read as a BEIR data set, from its
    corpus.jsonl alone, and these are passed over; [] for any other path."""
    if not path.is_dir() or not (path / "corpus.jsonl").is_file():
        return []
    beir = {"corpus.jsonl", "queries.jsonl"}
    return [relative.as_posix() for f, relative in visible(path)
            if f.is_file() and (f.suffix.lower() in FILE_DOCUMENTS or f.suffix.lower() in ROW_DOCUMENTS)
            and relative.as_posix() not in beir and relative.parts[0] != "qrels"]


def linked_folders(path: Path) -> list[str]:
    """The symbolically linked folders (not hidden) under the folder `path`, relative to it: a folder's reading does
    not follow them (a link may lead back up, or anywhere); [] for a file."""
    if not path.is_dir():
        return []
    return [relative.as_posix() for f, relative in visible(path) if f.is_symlink() and f.is_dir()]


def rows_in_folder(path: Path) -> list[str]:
    """The .jsonl, .json, .csv and .tsv files (not hidden) under the folder `path`, relative to it: files of rows of
    documents, which a folder's reading passes over (each is indexed by giving its own path); [] for a file or a
    BEIR folder."""
    if not path.is_dir() or (path / "corpus.jsonl").is_file():
        return []
    return [relative.as_posix() for f, relative in visible(path) if f.suffix.lower() in ROW_DOCUMENTS and f.is_file()]


def read_documents(path: Path, fields: Fields | None = None, id_root: Path | None = None) -> list[Document]:
    """Every document at `path`, by its kind: a folder holding corpus.jsonl is a BEIR directory, another folder
    one document per file, a file is read by its extension. Ids are unique; an empty result is an error. A file
    read one document a file is named by its path relative to `id_root` (a folder above `path`; see `id_root_for`),
    else relative to the folder `path`, or, for a single file, by its name."""
    fields = fields or Fields()
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            return load_corpus(path / "corpus.jsonl")
        docs = list(folder_documents(path, id_root))
        if not docs:
            rows = sorted(p.name for p in path.iterdir() if p.suffix.lower() in ROW_DOCUMENTS)
            hint = f" (to index {rows[0]}, give its path)" if rows else ""
            raise DatasetError(f"{path}: no .txt, .md, .html or .pdf files in this folder{hint}; "
                               f"earlyrank indexes {ACCEPTED}")
        return docs
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in FILE_DOCUMENTS:
        place = (path.parent.resolve() / path.name).relative_to(id_root).as_posix() if id_root else path.name
        return [FILE_DOCUMENTS[suffix](path, checked_id(place, path))]
    if suffix not in ROW_DOCUMENTS:
        raise DatasetError(f"{path}: cannot index a '{suffix or path.name}' file; earlyrank indexes {ACCEPTED}")
    docs = list(ROW_DOCUMENTS[suffix](path, fields))
    if not docs:
        raise DatasetError(f"{path}: no documents in the file")
    return docs
