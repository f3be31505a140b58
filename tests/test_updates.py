"""Adding, replacing and deleting documents of a built index (`indexes.update`) and the CLI's add and delete.

The dense part is built with `fake_encode`, a stand-in for MiniLM with its interface: each word hashed into
one of 64 dimensions, the row normalized, so a passage is nearest to a query made of its own words.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from test_store import read_while
from typer.testing import CliRunner

from earlyrank.cli import app
from earlyrank.engine.datasets import load_corpus
from earlyrank.indexes.bm25 import BM25Index, BM25Params
from earlyrank.indexes.manifest import MANIFEST
from earlyrank.indexes.store import LoadedIndex, build_index, load_index
from earlyrank.indexes.types import Document
from earlyrank.indexes.update import UnknownDocumentError, update_index

CLOVES = Document("z1", "Zanzibar exports cloves grown on its spice farms.", "Zanzibar")
QUERIES = ["capital of France", "cats hunt mice", "Zanzibar cloves", "how do plants make sugar", "Berlin"]


def fake_encode(texts, params=None, model_path=None, progress=False) -> np.ndarray:
    vectors = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            vectors[row, zlib.crc32(word.encode()) % 64] += 1.0
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


class CountingEncoder:
    """`fake_encode`, recording the texts it was asked to encode."""

    def __init__(self):
        self.texts: list[str] = []

    def __call__(self, texts, params=None, model_path=None, progress=False) -> np.ndarray:
        self.texts.extend(texts)
        return fake_encode(texts)


def tiny_docs() -> list[Document]:
    return load_corpus(TINY / "corpus.jsonl")


@pytest.fixture
def both_parts(tmp_path) -> Path:
    return build_index(tiny_docs(), tmp_path / "idx", progress=False, encoder=fake_encode, corpus_name="tiny")


def nearest(index: LoadedIndex, text: str, k: int = 1) -> list[str]:
    assert index.dense is not None
    return [h.doc_id for h in index.dense.search_vector(fake_encode([text])[0], k)]


def bm25_ids(index: LoadedIndex, query: str, k: int = 3) -> list[str]:
    return [h.doc_id for h in index.retriever("bm25").search(query, k)]


def assert_bm25_equals_a_fresh_build(index: LoadedIndex, params: BM25Params | None = None) -> None:
    """Every query scores every document as a build from scratch of the same documents does (to 1e-6)."""
    assert index.bm25 is not None
    fresh = BM25Index.build([d.id for d in index.docs], [d.full_text for d in index.docs], params)
    assert set(index.bm25.vocab) == set(fresh.vocab)
    for query in QUERIES:
        np.testing.assert_allclose(index.bm25.scores(query), fresh.scores(query), rtol=0, atol=1e-6)


def test_an_added_passage_is_found_by_bm25_and_dense_and_only_it_is_encoded(both_parts):
    encoder = CountingEncoder()
    result = update_index(both_parts, add=[CLOVES], encoder=encoder)
    assert encoder.texts == [CLOVES.full_text]  # the 12 passages already indexed are not encoded again
    assert (result.added, result.replaced, result.deleted) == (("z1",), (), ())
    for index in (result.index, load_index(both_parts)):  # served as returned, and as read back from disk
        assert len(index.docs) == 13 and index.doc("z1").title == "Zanzibar"
        assert bm25_ids(index, "Zanzibar cloves", 1) == ["z1"]
        assert nearest(index, "Zanzibar cloves spice farms") == ["z1"]
        assert nearest(index, tiny_docs()[2].full_text) == ["d3"]  # the stored vectors are kept, in their rows
    manifest = load_index(both_parts).manifest
    assert manifest["corpus"]["documents"] == 13 and manifest["corpus"]["name"] == "tiny"
    assert manifest["corpus"]["last_update"] == {"added": 1, "replaced": 0, "deleted": 0}


def test_delete_removes_the_passage_from_both_parts(both_parts):
    d3 = next(d for d in tiny_docs() if d.id == "d3")
    assert bm25_ids(load_index(both_parts), "capital of France", 1) == ["d3"]
    result = update_index(both_parts, delete=["d3"], encoder=CountingEncoder())
    index = load_index(both_parts)
    assert result.deleted == ("d3",) and len(index.docs) == 11 and "d3" not in {d.id for d in index.docs}
    assert "d3" not in bm25_ids(index, "capital of France", 11)
    assert "d3" not in nearest(index, d3.full_text, 11)
    assert index.dense is not None and index.dense.index.ntotal == 11
    assert_bm25_equals_a_fresh_build(index)


def test_adding_an_id_the_index_holds_replaces_that_document(both_parts):
    lyon = Document("d3", "Lyon is known for its silk weavers.", "Lyon")
    result = update_index(both_parts, add=[lyon], encoder=fake_encode)
    index = load_index(both_parts)
    assert (result.added, result.replaced) == ((), ("d3",)) and len(index.docs) == 12
    assert index.doc("d3").text == lyon.text and [d.id for d in index.docs].count("d3") == 1
    assert bm25_ids(index, "silk weavers", 1) == ["d3"] and "d3" not in bm25_ids(index, "capital of France", 12)
    assert nearest(index, "Lyon silk weavers") == ["d3"]
    assert index.dense is not None and index.dense.index.ntotal == 12


@pytest.mark.parametrize("params", [BM25Params(), BM25Params(idf="okapi")], ids=["lucene", "okapi"])
def test_bm25_after_updates_scores_as_a_fresh_build(tmp_path, params):
    """N, avgdl and df change with every document, and so does every weight; idf 'okapi' also floors by the mean
    IDF over the vocabulary, which must not keep the terms only deleted documents had."""
    out = build_index(tiny_docs(), tmp_path / "idx", dense=False, bm25_params=params, progress=False)
    update_index(out, add=[CLOVES, Document("z2", "Cats and mice again: the cat hunts.", "Cats")])
    update_index(out, delete=["d1", "d7", "d3"])  # d3 holds the only "Paris"
    update_index(out, add=[Document("d4", "Berlin, Berlin, Berlin: the capital of Germany.", "Berlin")])
    index = load_index(out)
    assert "paris" not in index.bm25.vocab
    assert_bm25_equals_a_fresh_build(index, params)


def test_an_index_built_before_term_frequencies_were_stored_is_updated_from_its_texts(tmp_path):
    out = build_index(tiny_docs(), tmp_path / "idx", dense=False, progress=False)
    root = out.resolve()
    (root / BM25Index.TF_FILE).unlink()
    manifest = json.loads((root / MANIFEST).read_text())
    del manifest["files"][BM25Index.TF_FILE]
    (root / MANIFEST).write_text(json.dumps(manifest))
    update_index(out, add=[CLOVES], delete=["d1"])
    index = load_index(out)
    assert BM25Index.TF_FILE in index.manifest["files"]  # stored from now on
    assert_bm25_equals_a_fresh_build(index)


def test_an_index_of_format_2_loads_as_it_is_and_an_update_writes_format_3(tmp_path):
    """tests/data/index-format2 was built by commit 8932631, before bm25s: its weights (bm25_weights.npz) are
    served as they are, and the first update writes bm25s' files from its stored term frequencies."""
    import shutil

    out = tmp_path / "idx"
    shutil.copytree(Path(__file__).parent / "data" / "index-format2", tmp_path / "idx.v-20261130163457-dc774a")
    out.symlink_to("idx.v-20261130163457-dc774a")  # as a build leaves it
    index = load_index(out)
    assert index.manifest["format_version"] == 2 and "bm25_weights.npz" in index.manifest["files"]
    assert_bm25_equals_a_fresh_build(index)
    assert bm25_ids(index, "capital of France", 2) == ["d3", "d4"]
    served = update_index(out, add=[CLOVES], delete=["d1"]).index.bm25
    assert isinstance(served.model.scores["data"], np.memmap) and served.term_frequencies is None  # as if loaded
    index = load_index(out)
    assert index.manifest["format_version"] == 3
    assert set(index.manifest["files"]) == {"docs.jsonl", BM25Index.TF_FILE, *BM25Index.FILES.values()}
    assert_bm25_equals_a_fresh_build(index)


@pytest.mark.parametrize("add, delete, error, message", [
    ([], ["nope", "d1", "gone"], UnknownDocumentError, r"no document 'nope', 'gone' in the index; nothing was changed"),
    ([CLOVES, CLOVES], [], ValueError, r"document id 'z1' is given twice to add \(items 1 and 2\)"),
    ([], ["d1", "d1"], ValueError, r"document id 'd1' is given twice to delete"),
    ([CLOVES], ["z1"], ValueError, "'z1' is both added and deleted"),
    ([], [], ValueError, "nothing to update"),
    ([], [f"d{i}" for i in range(1, 13)], ValueError, "an index needs at least one document"),
])
def test_a_bad_update_changes_nothing(tmp_path, add, delete, error, message):
    out = build_index(tiny_docs(), tmp_path / "idx", dense=False, progress=False)
    version = out.resolve()
    with pytest.raises(error, match=message):
        update_index(out, add=add, delete=delete)
    assert out.resolve() == version and len(load_index(out).docs) == 12


CRASH_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from test_updates import CLOVES, fake_encode
    from earlyrank.indexes.update import update_index
    update_index(sys.argv[1], add=[CLOVES], delete=["d1"], encoder=fake_encode)
""")


@pytest.mark.parametrize("point", ["loaded", "parts", "synced", "renamed", "linked", "swapped"])
def test_kill_during_an_update_leaves_a_whole_index(both_parts, tmp_path, point):
    """An update killed at each step leaves the old index (or, once swapped, the new one) loadable and right in
    both parts; the next update cleans up what the killed one left."""
    env = {**os.environ, "EARLYRANK_CRASH_AT": point}
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(both_parts), str(Path(__file__).parent)],
                          env=env, capture_output=True)
    assert proc.returncode == 137, proc.stderr.decode()
    index = load_index(both_parts)
    ids = {d.id for d in index.docs}
    assert ("z1" in ids, "d1" in ids) == ((True, False) if point == "swapped" else (False, True))
    assert len(index.docs) == 12 and index.dense is not None and index.dense.index.ntotal == 12
    assert_bm25_equals_a_fresh_build(index)
    assert nearest(index, index.docs[-1].full_text) == [index.docs[-1].id]
    update_index(both_parts, delete=["d2"], encoder=fake_encode)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".link-" in p.name]


UPDATES_SCRIPT = textwrap.dedent("""
    import sys
    from earlyrank.indexes.types import Document
    from earlyrank.indexes.update import update_index
    for batch in range(1000):
        docs = [Document(f"b{batch}-{i}", f"batch {batch} passage {i} on topic {i % 7}") for i in range(50)]
        update_index(sys.argv[1], add=docs)
""")


def test_kill_at_random_moments_during_updates_never_breaks_the_index(tmp_path):
    """SIGKILL a process adding batch after batch at several moments: the index always loads and holds the
    first k batches whole, for some k."""
    out = build_index(tiny_docs(), tmp_path / "idx", dense=False, progress=False)
    for delay in (0.6, 1.1, 1.7, 2.4):
        proc = subprocess.Popen([sys.executable, "-c", UPDATES_SCRIPT, str(out)])
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        index = load_index(out)
        batches = {d.id.split("-")[0] for d in index.docs if d.id.startswith("b")}
        assert len(index.docs) == 12 + 50 * len(batches) and batches == {f"b{k}" for k in range(len(batches))}
    assert len(index.docs) > 12, "no update finished: give the process more time"
    assert_bm25_equals_a_fresh_build(index)


def test_two_writers_at_once_lose_no_update(both_parts):
    """Each writer reads the current version, encodes (slowly) and swaps its version in; without the writer
    lock both read the same version and the second swap drops the first one's document."""

    def slow_encode(texts, params=None, model_path=None, progress=False):
        time.sleep(0.5)
        return fake_encode(texts)

    docs = [Document(f"w{i}", f"writer {i} wrote this passage") for i in range(2)]
    errors: list[BaseException] = []

    def write(doc: Document) -> None:
        try:
            update_index(both_parts, add=[doc], encoder=slow_encode)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    writers = [threading.Thread(target=write, args=(d,)) for d in docs]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert errors == []
    index = load_index(both_parts)
    assert {"w0", "w1"} <= {d.id for d in index.docs} and len(index.docs) == 14


def test_readers_never_fail_while_the_index_is_updated(tmp_path):
    out = build_index(tiny_docs(), tmp_path / "idx", dense=False, progress=False)

    def add_and_delete() -> None:
        for _ in range(15):
            update_index(out, add=[CLOVES])
            update_index(out, delete=["z1"])

    assert read_while(out, {12, 13}, add_and_delete, readers=2) == []


runner = CliRunner()


def test_cli_add_then_delete(tmp_path):
    out = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(TINY), "--out", str(out), "--bm25"]).exit_code == 0
    faq = tmp_path / "faq.csv"
    faq.write_text("id,title,text\nz1,Zanzibar,Zanzibar exports cloves.\nd3,Lyon,Lyon is known for silk.\n")
    added = runner.invoke(app, ["add", str(faq), "--index", str(out)])
    assert added.exit_code == 0, added.output
    assert f"added 1 and replaced 1 documents in {out} (13 documents now;" in added.output
    found = runner.invoke(app, ["search", "Zanzibar cloves", "--index", str(out), "--mode", "bm25", "--json"])
    assert json.loads(found.output)[0]["doc_id"] == "z1"
    deleted = runner.invoke(app, ["delete", "z1", "d3", "--index", str(out)])
    assert deleted.exit_code == 0 and f"deleted 2 documents from {out} (11 documents now;" in deleted.output


@pytest.mark.parametrize("command, message", [
    (["add", "{faq}"], "{faq}:3: field 'text' is empty"),
    (["add", "{dup}"], "{dup}:2: duplicate document id 'z1', first on line 1"),
    (["delete", "d1", "nope"], "no document 'nope' in the index; nothing was changed"),
    (["delete", "d1", "d1"], "document id 'd1' is given twice to delete (items 1 and 2); ids in one update "
                             "must be unique"),
    (["add", "{missing}"], "{missing}: no such file or folder"),
])
def test_cli_add_and_delete_errors_are_one_line_and_change_nothing(tmp_path, command, message):
    out = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(TINY), "--out", str(out), "--bm25"]).exit_code == 0
    version = out.resolve()
    files = {"faq": tmp_path / "faq.csv", "dup": tmp_path / "dup.jsonl", "missing": tmp_path / "missing.csv"}
    files["faq"].write_text("id,text\nz1,Zanzibar exports cloves.\nz2,  \n")
    files["dup"].write_text('{"_id": "z1", "text": "a"}\n{"_id": "z1", "text": "b"}\n')
    args = [a.format(**files) for a in command]
    result = runner.invoke(app, [*args, "--index", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip() == f"error: {message.format(**files)}"
    assert out.resolve() == version


def test_counts_are_in_the_singular_for_one():
    from earlyrank.cli.common import count

    assert (count(1, "document"), count(0, "document"), count(2, "document")) == (
        "1 document", "0 documents", "2 documents")


def test_add_reads_files_as_the_index_was_built(tmp_path):
    """`add docs/policies/warranty.md` after `index docs` named the file "warranty.md", not "policies/warranty.md":
    the edited file was added beside its stale version, which still ranked first. `add faq.tsv` without the field
    options `index` was given made new documents with hash ids and no titles beside the old ones."""
    runner = CliRunner()
    docs = tmp_path / "docs"
    (docs / "policies").mkdir(parents=True)
    (docs / "policies" / "warranty.md").write_text("The warranty lasts two years.")
    (docs / "shipping.md").write_text("Shipping takes five days.")
    built = runner.invoke(app, ["index", str(docs), "--out", str(tmp_path / "idx"), "--bm25"])
    assert built.exit_code == 0, built.output
    (docs / "policies" / "warranty.md").write_text("The warranty lasts three years.")
    added = runner.invoke(app, ["add", str(docs / "policies" / "warranty.md"), "--index", str(tmp_path / "idx")])
    assert added.exit_code == 0 and "added 0 and replaced 1" in added.output, added.output
    index = load_index(tmp_path / "idx")
    assert {d.id: d.text for d in index.docs} == {"policies/warranty.md": "The warranty lasts three years.",
                                                  "shipping.md": "Shipping takes five days."}
    # a whole subfolder added keeps the ids too, and so does the folder itself, without a note
    again = runner.invoke(app, ["add", str(docs / "policies"), "--index", str(tmp_path / "idx")])
    assert "added 0 and replaced 1" in again.output and "note" not in again.output, again.output
    whole = runner.invoke(app, ["add", str(docs), "--index", str(tmp_path / "idx")])
    assert "added 0 and replaced 2" in whole.output and "note" not in whole.output, whole.output
    # a file from elsewhere is named by its own name, and the user is told
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "hours.md").write_text("Open on Saturdays.")
    outside = runner.invoke(app, ["add", str(tmp_path / "other" / "hours.md"), "--index", str(tmp_path / "idx")])
    assert f"note: {tmp_path / 'other' / 'hours.md'} is not inside {docs}" in outside.output, outside.output

    faq = tmp_path / "faq.tsv"
    faq.write_text("question_id\theadline\tbody\nq1\tWarranty\tThe warranty lasts two years.\n"
                   "q2\tRefunds\tRefunds take 14 days.\n")
    built = runner.invoke(app, ["index", str(faq), "--out", str(tmp_path / "fi"), "--bm25", "--text-field", "body",
                                "--id-field", "question_id", "--title-field", "headline"])
    assert built.exit_code == 0, built.output
    faq.write_text(faq.read_text().replace("two years", "three years"))
    added = runner.invoke(app, ["add", str(faq), "--index", str(tmp_path / "fi")])
    assert added.exit_code == 0 and "added 0 and replaced 2" in added.output, added.output
    index = load_index(tmp_path / "fi")
    assert {d.id: (d.title, d.text) for d in index.docs} == {"q1": ("Warranty", "The warranty lasts three years."),
                                                             "q2": ("Refunds", "Refunds take 14 days.")}


def test_another_file_added_takes_the_default_fields_not_the_index_files(tmp_path):
    """The field options of `index faq.csv --id-field qid` applied to every file added: a CSV without that column
    was refused ("name the column with --id-field", with no column to name), and JSON lines with "id" got hash ids
    and were added beside the documents they should have replaced."""
    runner = CliRunner()
    faq = tmp_path / "faq.csv"
    faq.write_text("qid,text\nq1,The warranty lasts two years.\n")
    assert runner.invoke(app, ["index", str(faq), "--out", str(tmp_path / "idx"), "--bm25", "--id-field",
                               "qid"]).exit_code == 0
    more = tmp_path / "more.jsonl"
    more.write_text('{"id": "q1", "text": "The warranty lasts three years."}\n')
    added = runner.invoke(app, ["add", str(more), "--index", str(tmp_path / "idx")])
    assert added.exit_code == 0 and "added 0 and replaced 1" in added.output, added.output


def test_the_indexs_id_field_applies_where_added_rows_have_it(tmp_path):
    """Applied only to the very file indexed, another export of the same table (same columns) got hash ids and was
    added beside the rows it should have replaced."""
    runner = CliRunner()
    (tmp_path / "products.csv").write_text("sku,body\nA1,Red shirt.\nB2,Blue hat.\n")
    assert runner.invoke(app, ["index", str(tmp_path / "products.csv"), "--out", str(tmp_path / "idx"), "--bm25",
                               "--text-field", "body", "--id-field", "sku"]).exit_code == 0
    (tmp_path / "june.csv").write_text("sku,body\nA1,Red shirt, now in linen.\nB2,Blue hat.\n".replace(", now", " now"))
    added = runner.invoke(app, ["add", str(tmp_path / "june.csv"), "--index", str(tmp_path / "idx"), "--text-field",
                                "body"])
    assert added.exit_code == 0 and "added 0 and replaced 2" in added.output, added.output
    assert sorted(d.id for d in load_index(tmp_path / "idx").docs) == ["A1", "B2"]


def test_an_id_field_given_to_add_leaves_the_inherited_title_field_optional(tmp_path):
    """`add --id-field` made every inherited field required: a file without the index's title column was refused
    ("field 'headline' is not a column ... name the column with --title-field"), though `add` without the option
    read it. The field given stays required; the inherited one applies where rows have it."""
    runner = CliRunner()
    (tmp_path / "faq.csv").write_text("qid,headline,body\nq1,Warranty,The warranty lasts two years.\n")
    assert runner.invoke(app, ["index", str(tmp_path / "faq.csv"), "--out", str(tmp_path / "idx"), "--bm25",
                               "--text-field", "body", "--id-field", "qid", "--title-field", "headline"]).exit_code == 0
    (tmp_path / "more.csv").write_text("ref,body\nq1,The warranty lasts three years.\n")
    added = runner.invoke(app, ["add", str(tmp_path / "more.csv"), "--index", str(tmp_path / "idx"), "--id-field",
                                "ref"])
    assert added.exit_code == 0 and "added 0 and replaced 1" in added.output, added.output
    assert {d.id: d.text for d in load_index(tmp_path / "idx").docs} == {"q1": "The warranty lasts three years."}
    missing = runner.invoke(app, ["add", str(tmp_path / "more.csv"), "--index", str(tmp_path / "idx"), "--id-field",
                                  "sku"])
    assert missing.exit_code == 2 and "'sku' is not a column" in missing.output, missing.output


def test_a_file_without_the_indexs_text_field_is_told_where_that_field_came_from(tmp_path):
    """Adding JSON lines to an index built from a CSV with --text-field description said only "field 'description'
    is missing", a field the user never named for this file."""
    runner = CliRunner()
    (tmp_path / "products.csv").write_text("sku,description\nA1,Red shirt.\n")
    assert runner.invoke(app, ["index", str(tmp_path / "products.csv"), "--out", str(tmp_path / "idx"), "--bm25",
                               "--text-field", "description", "--id-field", "sku"]).exit_code == 0
    (tmp_path / "more.jsonl").write_text('{"id": "B2", "text": "Blue hat."}\n')
    added = runner.invoke(app, ["add", str(tmp_path / "more.jsonl"), "--index", str(tmp_path / "idx")])
    assert added.exit_code == 2
    assert "field 'description' is missing" in added.output and "built with" in added.output
    assert "--text-field" in added.output
    ok = runner.invoke(app, ["add", str(tmp_path / "more.jsonl"), "--index", str(tmp_path / "idx"), "--text-field",
                             "text"])
    assert ok.exit_code == 0 and "added 1" in ok.output, ok.output
    (tmp_path / "june.csv").write_text("sku,description\nC3,\n")  # the field is there, its value empty: no hint
    empty = runner.invoke(app, ["add", str(tmp_path / "june.csv"), "--index", str(tmp_path / "idx")])
    assert empty.exit_code == 2 and "field 'description' is empty" in empty.output
    assert "built with" not in empty.output, empty.output
