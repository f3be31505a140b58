"""Commands that change the documents of a built index: add (or replace) and delete.

Each writes a new version of the index and swaps it in atomically, as `earlyrank index` does; a server
already running keeps serving the version it loaded until it restarts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from earlyrank.cli.common import (
    DEFAULT_INDEX,
    IdField,
    TitleField,
    app,
    check_text,
    count,
    fail,
    note_unread,
)

IndexDir = Annotated[Path, typer.Option("--index", "-i", help="Index directory to update.")]


@app.command()
def add(
    documents: Annotated[Path, typer.Argument(help=(
        "The documents, read as `earlyrank index` reads a corpus: a .jsonl, .json, .csv or .tsv file, a BEIR "
        "directory, or a folder of .txt, .md, .html and .pdf files."))],
    index_dir: IndexDir = DEFAULT_INDEX,
    text_field: Annotated[str | None, typer.Option("--text-field", help=(
        "JSON or CSV input: the field holding the text (default: the one the index was built with, else text; "
        "--id-field and --title-field likewise default to the index's, where a row has them)."))] = None,
    id_field: IdField = None,
    title_field: TitleField = None,
) -> None:
    """Add DOCUMENTS to the index; a document whose id the index already holds replaces it. Only the new
    documents are tokenized and encoded; the new version is swapped in atomically.

    DOCUMENTS is read as the index's own corpus was: the file the index was built from is read with the field
    options it was built with (unless given), and a file inside the folder it was built from keeps the id it got
    there (guide/setup.md), so an edited file replaces its old version."""
    from earlyrank.indexes.corpus import DatasetError
    from earlyrank.indexes.document_files import FILE_DOCUMENTS, Fields, id_root_for, read_documents
    from earlyrank.indexes.store import IndexStoreError, read_manifest
    from earlyrank.indexes.update import update_index

    built: dict = {}  # the index's own field options
    try:
        source = read_manifest(index_dir)[1].get("corpus", {}).get("source") or {}
        # The index's own field options apply where the added rows have those fields (the same file edited, or
        # another export of the same table); a row without them reads the defaults, as another file may have
        # other columns. An --id-field or --title-field given here is required, as for `earlyrank index`; the
        # other one, inherited, is not.
        built = source.get("fields") or {}
        inherited = frozenset(role for role, given in (("id", id_field), ("title", title_field)) if given is None)
        fields = Fields(text=text_field or built.get("text") or "text", id=id_field or built.get("id"),
                        title=title_field or built.get("title"), optional=inherited)
        id_root = id_root_for(documents, source.get("path"))
        docs = read_documents(documents, fields, id_root)
        folder = source.get("path")
        one_a_file = documents.is_dir() or documents.suffix.lower() in FILE_DOCUMENTS  # named by their paths
        if (id_root is None and folder and Path(folder).is_dir() and one_a_file
                and documents.resolve() != Path(folder).resolve()):
            typer.echo(f"note: {documents} is not inside {folder}, the folder this index was built from, so its files "
                       f"are named from {documents.name if documents.is_file() else documents}, not as there",
                       err=True)
        note_unread(documents)
        result = update_index(index_dir, add=docs)
    except DatasetError as e:
        from_index = text_field is None and built.get("text") not in (None, "text")
        absent = (f"field {built.get('text')!r} is missing", f"field {built.get('text')!r} is not a column")
        if from_index and any(a in str(e) for a in absent):  # a field this file never named: say where it came from
            fail(f"{e}: {built['text']!r} is the text field this index was built with; name this file's with "
                 f"--text-field")
        fail(str(e))
    except (IndexStoreError, ValueError) as e:
        fail(str(e))
    typer.echo(f"added {len(result.added)} and replaced {len(result.replaced)} documents in {index_dir} "
               f"({count(len(result.index.documents), 'document')} now; {result.seconds:.1f} s)")


@app.command()
def delete(
    ids: Annotated[list[str], typer.Argument(help="Ids of the documents to delete.")],
    index_dir: IndexDir = DEFAULT_INDEX,
) -> None:
    """Delete the documents with these IDS from the index. An id it does not hold is an error, and then
    nothing is deleted."""
    from earlyrank.indexes.store import IndexStoreError
    from earlyrank.indexes.update import update_index

    for doc_id in ids:
        check_text("document id", doc_id)
    try:
        result = update_index(index_dir, delete=ids)
    except (IndexStoreError, ValueError) as e:
        fail(str(e))
    typer.echo(f"deleted {len(result.deleted)} documents from {index_dir} "
               f"({count(len(result.index.documents), 'document')} now; {result.seconds:.1f} s)")
