from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from earlyrank.engine.datasets import DatasetError, load_dataset


def test_loads_tiny_fixture(tiny_dir):
    ds = load_dataset(tiny_dir)
    assert len(ds.corpus) == 12
    assert ds.corpus[2].id == "d3" and ds.corpus[2].title == "Paris"
    queries, qrels = ds.split("test")
    assert [q.id for q in queries] == ["q1", "q2", "q3"]
    assert qrels["q2"] == {"d1": 1, "d10": 1}
    assert ds.corpus[0].full_text.startswith("Cats. Cats are")


def _copy(tiny_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ds"
    shutil.copytree(tiny_dir, target)
    return target


@pytest.mark.parametrize("line, message", [
    ('{"_id": "d13", "text": ', "corpus.jsonl:13: not valid JSON"),
    ('["a list"]', "corpus.jsonl:13: expected a JSON object"),
    ('{"_id": "d13"}', "corpus.jsonl:13: field 'text' must be a non-empty string"),
    ('{"_id": "", "text": "x"}', "corpus.jsonl:13: field '_id' must be a non-empty string"),
    ('{"_id": "d1", "text": "again"}', "corpus.jsonl:13: duplicate document id 'd1'"),
])
def test_malformed_corpus_line_names_file_line_and_problem(tiny_dir, tmp_path, line, message):
    root = _copy(tiny_dir, tmp_path)
    with (root / "corpus.jsonl").open("a") as f:
        f.write(line + "\n")
    with pytest.raises(DatasetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_dataset(root)


def test_bad_qrels_score_and_unknown_document(tiny_dir, tmp_path):
    root = _copy(tiny_dir, tmp_path)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td3\tyes\n")
    with pytest.raises(DatasetError, match=r"test.tsv:2: score 'yes' is not an integer"):
        load_dataset(root)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tnope\t1\n")
    with pytest.raises(DatasetError, match="document id 'nope' not in corpus.jsonl"):
        load_dataset(root)


def test_missing_directory_and_unknown_split(tiny_dir, tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        load_dataset(tmp_path / "absent")
    with pytest.raises(DatasetError, match="no split 'dev'; available: test, train"):
        load_dataset(tiny_dir).split("dev")


def test_a_judged_query_missing_from_queries_is_refused_even_when_missing_documents_are_allowed(tiny_dir, tmp_path):
    """With documents allowed to be missing (TREC DL's pools), a judged query without a text was let through too:
    bench --run scored it 0 (0.9333 x 15/16) and bench --data dropped it, and neither said so."""
    root = _copy(tiny_dir, tmp_path)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tnope\t1\nq99\td3\t1\n")
    with pytest.raises(DatasetError, match="test.tsv: query id 'q99' not in queries.jsonl"):
        load_dataset(root, check_judged=False)


def test_qrels_with_a_byte_order_mark_read_their_header(tiny_dir, tmp_path):
    root = _copy(tiny_dir, tmp_path)
    (root / "qrels" / "test.tsv").write_bytes("\ufeffquery-id\tcorpus-id\tscore\nq1\td3\t1\n".encode())
    assert load_dataset(root).qrels["test"] == {"q1": {"d3": 1}}  # it said "score 'score' is not an integer"
