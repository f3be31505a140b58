"""`earlyrank index PATH` on what users have: JSON lines, JSON, CSV, TSV and a folder of .txt, .md, .html and
.pdf files (fixtures in tests/data/formats), each indexed with BM25 only and then searched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from earlyrank.cli import app
from earlyrank.indexes.document_files import content_id
from earlyrank.indexes.store import load_index, write_docs
from earlyrank.indexes.types import Document

FORMATS = Path(__file__).parent / "data" / "formats"
TSV_FIELDS = ["--text-field", "body", "--id-field", "question_id", "--title-field", "headline"]
runner = CliRunner()


def index(path: Path, out: Path, *options: str) -> str:
    result = runner.invoke(app, ["index", str(path), "--out", str(out), "--bm25", *options])
    assert result.exit_code == 0, result.output
    return result.output


def search(out: Path, query: str) -> list[dict]:
    result = runner.invoke(app, ["search", query, "--index", str(out), "--mode", "bm25", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize(("name", "options", "count", "query", "doc_id", "title"), [
    ("faq.jsonl", [], 4, "kettle warranty against defects", "warranty", "Warranty"),
    ("faq.json", [], 3, "descale with vinegar", "1", "Descaling"),
    ("faq.csv", [], 3, "how long does delivery to Norway take", "ship-2", "International delivery"),
    ("faq.tsv", TSV_FIELDS, 2, "reset a lost password", "q1", "Lost password"),
    ("docs", [], 4, "flush the espresso machine", "guide/cleaning.html", "Cleaning the espresso machine"),
    ("docs", [], 4, "returns with the receipt", "returns.pdf", "returns"),
    ("docs", [], 4, "student discount", "students.md", "students"),
    ("docs", [], 4, "loyalty points credited", "loyalty.txt", "loyalty"),
])
def test_each_format_is_indexed_and_searched(tmp_path, name, options, count, query, doc_id, title):
    assert f"indexed {count} documents" in index(FORMATS / name, tmp_path / "idx", *options)
    best = search(tmp_path / "idx", query)[0]
    assert (best["doc_id"], best["title"]) == (doc_id, title)


def test_html_keeps_the_visible_text_only(tmp_path):
    index(FORMATS / "docs", tmp_path / "idx")
    cleaning = load_index(tmp_path / "idx").doc("guide/cleaning.html")
    assert cleaning.text == "Cleaning\nFlush the espresso machine with clean water after every use."


def test_html_inline_elements_do_not_split_words_and_blocks_do(tmp_path):
    """Every element's text was joined with a space: "<b>war</b>ranty" became "war ranty", which BM25 cannot find."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "w.html").write_text("<p>The <b>war</b>ranty lasts H<sub>2</sub>O <a href='#'>two</a> years.</p>"
                                   "<ul><li>one</li><li>two</li></ul><details><summary>Shipping</summary>Free"
                                   "</details><select><option>Red</option><option>Blue</option></select>"
                                   "<button>Send</button><button>Cancel</button>"
                                   "<p><acronym>HTML</acronym>5 and <my-tag>cus</my-tag>tom</p>")
    index(folder, tmp_path / "idx")
    assert load_index(tmp_path / "idx").doc("w.html").text == ("The warranty lasts H2O two years.\none\ntwo\n"
                                                               "Shipping\nFree\nRed\nBlue\nSend\nCancel\n"
                                                               "HTML5 and custom")


def test_generated_ids_are_stable_across_runs(tmp_path):
    index(FORMATS / "faq.jsonl", tmp_path / "a")
    index(FORMATS / "faq.jsonl", tmp_path / "b")
    first, second = ([d.id for d in load_index(tmp_path / run).docs] for run in "ab")
    assert first == second
    assert first[0] == content_id("", "Refunds are paid back to the original card within five business days.")
    assert first[1] == content_id("Shipping", "Orders ship from our Rotterdam warehouse within two days.")
    assert first[2] == "warranty" and len(first[0]) == 16
    assert search(tmp_path / "a", "refunds to the original card")[0]["doc_id"] == first[0]


def test_metadata_survives_the_index(tmp_path):
    index(FORMATS / "faq.jsonl", tmp_path / "jsonl")
    docs = load_index(tmp_path / "jsonl").docs
    assert [d.metadata for d in docs] == [{"category": "billing"}, {"category": "delivery"},
                                          {"category": "support"},
                                          {"category": "billing", "tags": ["cards", "checkout"]}]
    index(FORMATS / "faq.json", tmp_path / "json")
    best = search(tmp_path / "json", "blender jar dishwasher")[0]
    assert best["doc_id"] == "3" and best["metadata"] == {"product": "blender", "verified": True}
    index(FORMATS / "faq.tsv", tmp_path / "tsv", *TSV_FIELDS)
    assert load_index(tmp_path / "tsv").doc("q2").metadata == {"section": "account"}


def test_documents_without_metadata_are_written_as_before(tmp_path):
    write_docs(tmp_path / "docs.jsonl", [Document("d1", "text", "title"), Document("d2", "x", metadata={"a": 1})])
    assert (tmp_path / "docs.jsonl").read_text().splitlines() == [
        '{"_id": "d1", "title": "title", "text": "text"}',
        '{"_id": "d2", "title": "", "text": "x", "metadata": {"a": 1}}']


@pytest.mark.parametrize(("name", "content", "message"), [
    ("bad.jsonl", '{"text": "a"}\n\n{"text": "   ", "_id": "x"}\n', "bad.jsonl:3: field 'text' is empty"),
    ("bad.jsonl", '{"text": "a"}\n{"body": "b"}\n', "bad.jsonl:2: field 'text' is missing"),
    ("bad.jsonl", '{"text": "a"}\n{"text": "b"\n', "bad.jsonl:2: not valid JSON"),
    ("bad.jsonl", b'{"text": "a"}\n{"text": "\xff"}\n', "bad.jsonl:2: not UTF-8 text (byte 0xff)"),
    ("bad.jsonl", '{"text": "same"}\n{"text": "same"}\n',
     f"bad.jsonl:2: duplicate title and text (generated id {content_id('', 'same')!r}), first on line 1"),
    ("bad.json", '[\n  {"text": "a"},\n  {"text": "b"},\n  {"id": 4, "title": "t"}\n]',
     "bad.json:4: field 'text' is missing"),
    ("bad.json", '[{"id": 1, "text": "a"},\n {"id": "1", "text": "b"}]',
     "bad.json:2: duplicate document id '1', first on line 1"),
    ("bad.json", '[{"text": "a"},\n {"text": 7}]', "bad.json:2: field 'text' must be a string, got int"),
    ("bad.json", '[{"text": "a"}\n {"text": "b"}]', "bad.json:2: not valid JSON (expected ',' or ']')"),
    ("bad.csv", 'id,text\n1,a\n2,\n', "bad.csv:3: field 'text' is empty"),
    ("bad.csv", 'id,body\n1,a\n', "bad.csv:1: field 'text' is not a column of the header (id, body); "
                                  "name the column with --text-field"),
    ("bad.csv", 'id,text\n1,ok\n2,"b"x\n', "bad.csv:3: not valid CSV (',' expected after '\"')"),
    ("bad.tsv", 'id\ttext\ttitle\n1\ta\tA\n2\tb\n', "bad.tsv:3: 2 values, the header names 3 columns"),
    ("bad.tsv", 'id\ttext\n1\ta\n1\tb\n', "bad.tsv:3: duplicate document id '1', first on line 2"),
    # UTF-16 without a byte-order mark decodes as UTF-8 and was indexed as "T h e  w a r r a n t y"
    ("bad.txt", "The warranty.\n".encode("utf-16-le"), "bad.txt:1: holds NUL bytes, so it is not UTF-8 text "
                                                        "(UTF-16 without a byte-order mark?); save it as UTF-8"),
])
def test_a_bad_row_is_refused_with_its_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = runner.invoke(app, ["index", str(path), "--out", str(tmp_path / "idx"), "--bm25"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {tmp_path}/{message}") and result.output.count("\n") == 1
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize(("files", "target", "message"), [
    ({}, "", "no .txt, .md, .html or .pdf files in this folder; earlyrank indexes a BEIR directory"),
    ({"faq.csv": "text\na\n"}, "", "no .txt, .md, .html or .pdf files in this folder (to index faq.csv, give "
                                    "its path)"),
    ({"sheet.xlsx": "x"}, "sheet.xlsx", "sheet.xlsx: cannot index a '.xlsx' file; earlyrank indexes a BEIR "
                                        "directory (corpus.jsonl), a .jsonl, .json, .csv or .tsv file, or a folder"),
    ({"a.txt": "a", "b.txt": " \n"}, "", "b.txt: no text in the file"),
    ({"a.pdf": "%PDF-1.4 not really"}, "", "a.pdf: not a readable PDF"),
    ({"a.md": b"ok\n\xc3("}, "", "a.md:2: not UTF-8 text (byte 0xc3)"),
    ({"empty.csv": ""}, "empty.csv", "empty.csv:1: no header row naming the columns"),
    ({"none.json": "[]"}, "none.json", "none.json: no documents in the file"),
    ({}, "missing.jsonl", "missing.jsonl: no such file or folder"),
])
def test_files_and_folders_that_cannot_be_indexed(tmp_path, files, target, message):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    result = runner.invoke(app, ["index", str(folder / target), "--out", str(tmp_path / "idx"), "--bm25"])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith(f"error: {folder / target}".rstrip("/")) and message in result.output


def test_a_beir_folder_keeps_top_level_fields_as_metadata(tmp_path):
    """The same rows as faq.jsonl, saved as a BEIR folder's corpus.jsonl, once lost `category` (only a `metadata`
    object was read), so `--filter category=billing` matched nothing. Fields merge as in a .jsonl file."""
    import json

    folder = tmp_path / "beir"
    folder.mkdir()
    rows = [{"_id": "r1", "text": "Refunds are paid back within five days.", "category": "billing", "year": 2024},
            {"_id": "r2", "text": "Orders ship within two days.", "metadata": {"category": "delivery", "n": 1},
             "n": 2}]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    index(folder, tmp_path / "idx")
    docs = {d.id: d.metadata for d in load_index(tmp_path / "idx").docs}
    assert docs == {"r1": {"category": "billing", "year": 2024}, "r2": {"category": "delivery", "n": 2}}


def test_a_folder_says_which_files_of_rows_it_passed_over(tmp_path):
    """A folder is read one document a file (.txt, .md, .html, .pdf); a .jsonl beside them was passed over
    without a word, and the user saw "indexed 1 documents" for a folder holding a dozen."""
    import shutil

    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "manual.txt").write_text("The kettle boils water in two minutes.")
    shutil.copy(FORMATS / "faq.jsonl", folder / "faq.jsonl")
    (folder / ".hidden.csv").write_text("text\nx\n")
    output = index(folder, tmp_path / "idx")
    assert "note: not read: faq.jsonl (files of rows of documents; index or add each by giving its path)" in output
    assert "indexed 1 document (1 passage)" in output and "hidden" not in output
    assert "not read" not in index(FORMATS / "faq.jsonl", tmp_path / "idx2")


def test_a_folder_holding_corpus_jsonl_says_which_other_files_it_passed_over(tmp_path):
    """A corpus.jsonl makes a folder a BEIR data set; the notes and pages beside it were dropped without a word."""
    folder = tmp_path / "notes"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "x1", "text": "exported row"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q", "text": "row?"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\tx1\t1\n")
    (folder / "a.md").write_text("Meeting notes about the budget.")
    (folder / "b.txt").write_text("Plan for the launch in May.")
    output = index(folder, tmp_path / "idx")
    assert "indexed 1 document" in output
    assert "note: not read: a.md, b.txt: this folder holds corpus.jsonl, so it was read as a BEIR data set" in output


def test_a_tsv_is_read_quoted_or_unquoted_as_it_was_written_and_a_csv_cell_may_be_long(tmp_path):
    """A TSV was read with CSV's quotes only: a text starting with a quote mark was refused, and a quote left open
    merged the next rows into one text. Read unquoted only, a TSV written by pandas or Python's csv (which quote a
    cell holding a quote mark or a line break) was misread. A CSV cell over 128 KiB was refused."""
    tsv = tmp_path / "m.tsv"
    tsv.write_text('id\ttext\n1\t"Hello there\n2\tworld of quotes"\n3\t"Quoted" phrase starts this text.\n')
    index(tsv, tmp_path / "tsv")
    docs = {d.id: d.text for d in load_index(tmp_path / "tsv").docs}
    assert docs == {"1": '"Hello there', "2": 'world of quotes"', "3": '"Quoted" phrase starts this text.'}
    quoted = tmp_path / "q.tsv"
    quoted.write_text('id\ttext\n1\t"He said ""hi"""\n2\t"two\nlines"\n3\t"a\ttab"\n')
    index(quoted, tmp_path / "quoted")
    assert {d.id: d.text for d in load_index(tmp_path / "quoted").docs} == {"1": 'He said "hi"', "2": "two\nlines",
                                                                             "3": "a\ttab"}
    big = tmp_path / "big.csv"
    big.write_text("id,text\nlong," + "word " * 40_000 + "\n")
    index(big, tmp_path / "csv")
    (long,) = load_index(tmp_path / "csv").documents
    assert long.id == "long" and long.text == "word " * 40_000


def test_a_passage_with_windows_line_ends_prints_on_one_row(tmp_path):
    """Only "\\n" was replaced in the table: a "\\r" sent the cursor back and the passage overwrote the rank,
    score and id of its own row."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "t.txt").write_bytes(b"Warranty terms.\r\nThe warranty\tlasts two years.\r\n")
    index(folder, tmp_path / "idx")
    result = runner.invoke(app, ["search", "warranty", "--index", str(tmp_path / "idx"), "--mode", "bm25"])
    assert result.exit_code == 0 and "\r" not in result.output and "\t" not in result.output, repr(result.output)
    assert result.output.rstrip().endswith("t.txt                     t. Warranty terms. The warranty lasts two years.")


@pytest.mark.parametrize(("name", "content", "message"), [
    # a lone surrogate in metadata passed every check, and failed after the whole corpus was encoded, naming
    # "position 80" of an internal file; in a BEIR corpus's text it ended in a tokenizer traceback
    ("meta.jsonl", '{"id": "a", "text": "ok"}\n{"id": "b", "text": "ok too", "tag": "\\ud83d"}\n',
     "meta.jsonl:2: holds a string that is not valid Unicode (a lone surrogate"),
    ("arr.json", '[{"id": "a", "text": "ok"},\n {"id": "b", "text": "x", "tag": "\\ud83d"}]',
     "arr.json:2: holds a string that is not valid Unicode"),
    ("beir/corpus.jsonl", '{"_id": "a", "text": "bad \\ud800 text"}\n',
     "corpus.jsonl:1: holds a string that is not valid Unicode"),
    ("nan.jsonl", '{"id": "a", "text": "ok", "score": NaN}\n', "nan.jsonl:1: holds NaN or Infinity"),
    ("deep.jsonl", '{"id": "a", "text": "ok", "m": ' + "[" * 40 + "]" * 40 + "}\n",
     "deep.jsonl:1: nested more than 32 levels deep"),
    ("deeper.jsonl", '{"id": "a", "text": "ok", "m": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
     "deeper.jsonl:1: nested more than 32 levels deep"),
    ("dup.csv", "id,text,text\n1,a,b\n", "dup.csv:1: column 'text' appears twice in the header"),
    ("wide.jsonl", '{"id": "a", "text": "x"}\n'.encode("utf-16-le").decode("latin-1"), "wide.jsonl:1: holds NUL"),
    ("deep.json", '{"text": "hello", "m": ' + "[" * 5000 + "]" * 5000 + "}\n", "deep.json:1: nested more than 32"),
    # an export's usual shape was "not valid JSON" (pretty-printed) or "field 'text' is missing" (one line)
    ("export.json", '{\n  "documents": [\n    {"id": "a", "text": "Refunds take 14 days."}\n  ]\n}\n',
     "export.json: one JSON object whose 'documents' holds the documents; earlyrank reads a JSON array"),
    ("export.json", '{"documents": [{"id": "a", "text": "Refunds take 14 days."}]}\n',
     "export.json: one JSON object whose 'documents' holds the documents"),
])
def test_bad_unicode_and_wrapped_arrays_are_refused_up_front_by_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(content)
    target = path.parent if name.startswith("beir/") else path
    result = runner.invoke(app, ["index", str(target), "--out", str(tmp_path / "idx"), "--bm25"])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output


def test_a_beir_corpus_takes_integer_ids_as_a_jsonl_file_does(tmp_path):
    (tmp_path / "beir").mkdir()
    (tmp_path / "beir" / "corpus.jsonl").write_text('{"_id": 7, "text": "Seven."}\n')
    index(tmp_path / "beir", tmp_path / "idx")
    assert [d.id for d in load_index(tmp_path / "idx").docs] == ["7"]


def test_a_file_whose_name_is_not_utf8_is_refused_by_name(tmp_path):
    """Its name became the id, which failed after the whole folder was encoded ('surrogates not allowed')."""
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/caf\xe9.txt", "wb") as f:
        f.write(b"Coffee notes.")
    result = runner.invoke(app, ["index", str(folder), "--out", str(tmp_path / "idx"), "--bm25"])
    assert result.exit_code == 2, result.output
    assert "the file name b'caf\\xe9.txt' is not UTF-8; rename the file" in result.output


def test_a_linked_file_is_named_where_it_lies(tmp_path):
    """Ids were made from resolved paths: a link to a file outside the folder failed ("is not in the subpath"),
    and a second name for a file inside it clashed with the file's own id."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "shipping.md").write_text("Shipping takes five days.")
    docs = tmp_path / "docs"
    (docs / "policies").mkdir(parents=True)
    (docs / "policies" / "warranty.md").write_text("The warranty lasts two years.")
    (docs / "shipping.md").symlink_to(tmp_path / "shared" / "shipping.md")
    (docs / "warranty-latest.md").symlink_to(docs / "policies" / "warranty.md")
    index(docs, tmp_path / "idx")
    assert sorted(d.id for d in load_index(tmp_path / "idx").docs) == ["policies/warranty.md", "shipping.md",
                                                                     "warranty-latest.md"]
    (tmp_path / "shared" / "shipping.md").write_text("Shipping takes three days.")
    added = runner.invoke(app, ["add", str(docs / "shipping.md"), "--index", str(tmp_path / "idx")])
    assert "added 0 and replaced 1" in added.output, added.output


def test_a_single_file_whose_name_is_not_utf8_is_refused_by_name(tmp_path):
    import os

    name = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    with open(name, "wb") as f:
        f.write(b"Coffee notes.")
    result = runner.invoke(app, ["index", os.fsdecode(name), "--out", str(tmp_path / "idx"), "--bm25"])
    assert result.exit_code == 2 and "the file name b'caf\\xe9.txt' is not UTF-8" in result.output, result.output


def test_a_linked_folder_is_noted_as_not_read(tmp_path):
    """Symbolically linked subfolders were skipped without a word."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "faq.md").write_text("Refunds take 14 days.")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Shipping takes five days.")
    (docs / "more").symlink_to(tmp_path / "elsewhere")
    output = index(docs, tmp_path / "idx")
    assert "note: not read: more (linked folders are not followed" in output
    assert [d.id for d in load_index(tmp_path / "idx").docs] == ["a.md"]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
@pytest.mark.parametrize("option", ["--id-field", "--title-field"])
def test_a_json_field_named_on_the_command_line_that_no_record_has_is_refused(tmp_path, suffix, option):
    """A misspelt --id-field on JSON lines was read as "no id": every document got a hash id and its real id went
    to the metadata (an `add` of the same file then doubled every document); a misspelt --title-field emptied
    every title. A CSV without the column was refused; JSON now is too, naming the field and the fields seen."""
    rows = [{"_id": "faq-1", "title": "Warranty", "text": "The warranty lasts two years."},
            {"_id": "faq-2", "title": "Refunds", "text": "Refunds take 14 days."}]
    path = tmp_path / f"faq{suffix}"
    path.write_text("\n".join(json.dumps(r) for r in rows) if suffix == ".jsonl" else json.dumps(rows))
    result = CliRunner().invoke(app, ["index", str(path), "--out", str(tmp_path / "idx"), "--bm25", option, "nosuch"])
    assert result.exit_code == 2, result.output
    assert f"no record has the field 'nosuch' given with {option}" in result.output
    assert "_id, title, text" in result.output and not (tmp_path / "idx").exists()
    some = [dict(rows[0], ref="a"), rows[1]]  # a field some records have: the others read as without it
    path.write_text("\n".join(json.dumps(r) for r in some) if suffix == ".jsonl" else json.dumps(some))
    assert CliRunner().invoke(app, ["index", str(path), "--out", str(tmp_path / "idx2"), "--bm25", "--id-field",
                                    "ref"]).exit_code == 0
