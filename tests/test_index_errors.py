"""A manifest of the wrong shape, an index link to a file and a server pointed at no index are refused with one
IndexStoreError naming the file, which the CLI prints as one line (issue 21, item 3)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from earlyrank.cli import app
from earlyrank.engine.datasets import load_corpus
from earlyrank.indexes.store import IndexStoreError, build_index, load_index

runner = CliRunner()


@pytest.fixture
def index(tiny_dir, tmp_path) -> Path:
    return build_index(load_corpus(tiny_dir / "corpus.jsonl"), tmp_path / "idx", dense=False, progress=False)


def edit(manifest: dict, change) -> dict:
    change(manifest)
    return manifest


@pytest.mark.parametrize("change, message", [
    (lambda m: [], "format version None"),
    (lambda m: "text", "format version None"),
    (lambda m: edit(m, lambda m: m.pop("files")), "'files' is missing or not an object"),
    (lambda m: edit(m, lambda m: m.update(files=[])), "'files' is missing or not an object"),
    (lambda m: edit(m, lambda m: m["files"]["docs.jsonl"].pop("sha256")),
     "files['docs.jsonl'] needs an integer 'bytes' and a string 'sha256'"),
    (lambda m: edit(m, lambda m: m["files"].update({"docs.jsonl": "abc"})),
     "files['docs.jsonl'] needs an integer 'bytes' and a string 'sha256'"),
    (lambda m: edit(m, lambda m: m["files"].update({"../escape": {"bytes": 1, "sha256": "x"}})),
     "files: '../escape' is not a file name inside the index"),
    (lambda m: edit(m, lambda m: m.pop("parts")), "'parts' is missing or not an object"),
    (lambda m: edit(m, lambda m: m["parts"]["bm25"].pop("params")), "parts['bm25'] needs a 'params' object"),
    (lambda m: edit(m, lambda m: m["parts"].update(dense={"params": {}})),
     "parts['dense'] needs a 'model' object with a string 'sha256'"),
    (lambda m: edit(m, lambda m: m["parts"]["bm25"]["params"].update(k3=1.0)),
     "bm25 parameters are invalid (BM25Params.__init__() got an unexpected keyword argument 'k3')"),
    (lambda m: edit(m, lambda m: m["parts"]["bm25"]["params"].update(b=7)),
     "bm25 parameters are invalid (BM25 needs k1 >= 0 and 0 <= b <= 1"),
    (lambda m: edit(m, lambda m: m["fusion"].update(alpha=1)),
     "fusion parameters are invalid (FusionParams.__init__() got an unexpected keyword argument 'alpha')"),
])
def test_a_manifest_of_the_wrong_shape_is_one_error_naming_it(index, change, message):
    manifest_path = index.resolve() / "manifest.json"
    manifest_path.write_text(json.dumps(change(json.loads(manifest_path.read_text()))))
    with pytest.raises(IndexStoreError) as caught:
        load_index(index)
    assert str(caught.value).startswith(f"{manifest_path}: ") and message in str(caught.value)
    assert str(caught.value).endswith(f"rebuild it with: earlyrank index CORPUS_DIR --out {index}")
    result = runner.invoke(app, ["search", "capital", "--index", str(index), "--mode", "bm25"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [f"error: {caught.value}"]


@pytest.mark.parametrize("content, reason", [
    (b'{"format_version": "\xff"}', "UnicodeDecodeError"), (b"[" * 100_000, "RecursionError")])
def test_a_manifest_that_is_not_json_text_is_unreadable(index, content, reason):
    (index.resolve() / "manifest.json").write_bytes(content)
    with pytest.raises(IndexStoreError, match=f"manifest.json: unreadable \\({reason}\\)"):
        load_index(index)


def test_an_index_link_to_a_file_is_one_error(tmp_path):
    (tmp_path / "file").write_text("not an index")
    os.symlink("file", tmp_path / "idx")
    with pytest.raises(IndexStoreError, match=f"idx: not an index directory \\(a link to the file {tmp_path}/file\\)"):
        load_index(tmp_path / "idx")
    with pytest.raises(IndexStoreError, match="file: not an index directory \\(a file\\)"):
        load_index(tmp_path / "file")
    result = runner.invoke(app, ["search", "capital", "--index", str(tmp_path / "idx"), "--mode", "bm25"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


@pytest.fixture
def no_server(monkeypatch):
    """uvicorn.run replaced by a recorder: a test that reached it would otherwise start a server."""
    started: list = []
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: started.append(args))
    return started


def test_serve_refuses_a_missing_index_before_serving(tmp_path, no_server):
    result = runner.invoke(app, ["serve", "--index", str(tmp_path / "nope")])
    assert result.exit_code == 2 and no_server == [] and "serving" not in result.output
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no index here; rebuild it with: earlyrank index CORPUS_DIR --out "
        f"{tmp_path / 'nope'}"]


def test_serve_refuses_a_broken_index_or_a_missing_model_before_serving(index, tmp_path, no_server):
    (index.resolve() / "manifest.json").write_text("[]")
    result = runner.invoke(app, ["serve", "--index", str(index)])
    assert result.exit_code == 2 and no_server == [] and len(result.output.strip().splitlines()) == 1
    assert "manifest.json: format version None" in result.output
    fresh = build_index(load_corpus(Path(__file__).parent / "data" / "tiny" / "corpus.jsonl"), tmp_path / "ok",
                        dense=False, progress=False)
    result = runner.invoke(app, ["serve", "--index", str(fresh), "--model", str(tmp_path / "no-model")])
    assert result.exit_code == 2 and no_server == [] and "no such model directory" in result.output
    result = runner.invoke(app, ["serve", "--index", str(fresh), "--port", "8123"])
    assert result.exit_code == 0 and len(no_server) == 1 and "serving" in result.output
