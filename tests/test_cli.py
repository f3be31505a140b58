from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from earlyrank.cli import app

runner = CliRunner()


@pytest.fixture
def bm25_index(tiny_dir, tmp_path):
    out = tmp_path / "idx"
    result = runner.invoke(app, ["index", str(tiny_dir), "--out", str(out), "--bm25"])
    assert result.exit_code == 0, result.output
    assert "indexed 12 documents" in result.output
    return out


def test_search_table_and_json(bm25_index):
    table = runner.invoke(app, ["search", "capital of France", "--index", str(bm25_index), "--mode", "bm25", "-k", "2"])
    assert table.exit_code == 0
    lines = table.output.strip().splitlines()
    assert lines[0].split()[:3] == ["rank", "score", "doc"] and lines[1].split()[2] == "d3" and len(lines) == 3
    as_json = runner.invoke(app, ["search", "capital of France", "--index", str(bm25_index), "--mode", "bm25",
                                  "--json"])
    hits = json.loads(as_json.output)
    assert [h["doc_id"] for h in hits] == ["d3", "d4"] and hits[0]["title"] == "Paris"


@pytest.mark.parametrize("args, message", [
    (["search", "   ", "--mode", "bm25"], "error: the query is empty"),
    (["search", "x", "--mode", "sparse"], "error: unknown mode 'sparse'"),
    (["search", "x", "--mode", "bm25", "-k", "0"], "error: -k must be a positive integer, got 0"),
    (["search", "x", "--mode", "dense"], "this index has no dense part"),
])
def test_bad_input_is_one_line_and_nonzero(bm25_index, args, message):
    result = runner.invoke(app, [*args, "--index", str(bm25_index)])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_index_and_corpus(tmp_path):
    result = runner.invoke(app, ["search", "x", "--index", str(tmp_path / "nope"), "--mode", "bm25"])
    assert result.exit_code == 2 and "no index here; rebuild it with: earlyrank index" in result.output
    result = runner.invoke(app, ["index", str(tmp_path / "nothing"), "--out", str(tmp_path / "i")])
    assert result.exit_code == 2 and "no such file or folder" in result.output


def test_help_explains_every_command():
    result = runner.invoke(app, ["--help"])
    for command in ("index", "search", "ask", "train", "calibrate", "tune", "bench"):
        assert command in result.output


def test_train_refuses_a_bad_init(tiny_dir, tmp_path):
    data = ["--data", str(tiny_dir)]
    result = runner.invoke(app, ["train", *data, "--out", str(tmp_path / "m"), "--init", str(tmp_path)])
    assert result.exit_code == 2 and "no config.json there" in result.output
    (tmp_path / "config.json").write_text("{}")
    result = runner.invoke(app, ["train", *data, "--out", str(tmp_path), "--init", str(tmp_path)])
    assert result.exit_code == 2 and "write the second stage somewhere else" in result.output


@pytest.mark.slow
def test_train_without_positive_judgements_is_a_one_line_error(tiny_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_dir, data)
    (data / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq4\td8\t0\n")  # judged, not relevant
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--max-steps", "1"])
    assert result.exit_code == 2, result.output
    assert "no training groups" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_dev_fitting_with_a_model_without_training_card_is_a_one_line_error(tiny_dir, tmp_path):
    from earlyrank.engine.model_files import CARD, DEFAULT_MODEL

    model = tmp_path / "model"
    model.mkdir()
    for file in DEFAULT_MODEL.iterdir():  # the bundled model, less its card (as a weight average is written)
        if file.name != CARD:
            (model / file.name).symlink_to(file)
    for command in ("calibrate", "tune", "fit-abstention"):
        result = runner.invoke(app, [command, "--data", str(tiny_dir), "--model", str(model)])
        assert result.exit_code == 2, (command, result.output)
        assert f"has no {CARD}" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--dev-split", "article", "dev_split must be one of query, title"),
    ("--self-supervised-kind", "words", "self-supervised kind must be one of title, sentence"),
    ("--selection", "best", "selection must be one of dev, last"),
    ("--distill", "5", "give distill_weight > 0"),
])
def test_train_refuses_an_unknown_choice(tiny_dir, tmp_path, option, value, message):
    result = runner.invoke(app, ["train", "--data", str(tiny_dir), "--out", str(tmp_path / "m"), option, value])
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--only", "msmarco"], "--only msmarco: not in the suite; choose from scifact, xquad-en"),
    (["--source", "bm25"], "--source bm25: choose 'run' or 'hybrid'"),
])
def test_bench_suite_refuses_an_unknown_set_or_source(tmp_path, args, message):
    result = runner.invoke(app, ["bench", "--suite", "--datasets", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize(("args", "depths", "stem"), [
    ([], {"scifact": 30, "noveleval-2306": 100}, "suite-scifact-noveleval-2306"),
    (["--depth", "100"], {"scifact": 100, "noveleval-2306": 100}, "suite-scifact-noveleval-2306-depth100"),
])
def test_bench_suite_takes_depth_for_every_set(tmp_path, monkeypatch, args, depths, stem):
    """`--depth` with `--suite` used to be ignored without a word (scifact stayed at 30); given, it is every set's
    depth and names the output, so it does not overwrite the suite's own run."""
    seen = {}

    def fake_run_suite(root, model, out, backend, sets, sources, stem, fusion_model=None):
        seen.update({s.name: s.depth for s in sets}, stem=stem)
        (out / f"{stem}.md").write_text("table")
        return {"seconds": 0.0}

    monkeypatch.setattr("earlyrank.engine.suite.run_suite", fake_run_suite)
    monkeypatch.setattr("earlyrank.cli.lab_commands.check_data", lambda dirs: None)
    result = runner.invoke(app, ["bench", "--suite", "--datasets", str(tmp_path), "--out", str(tmp_path),
                                 "--only", "scifact", "--only", "noveleval-2306", *args])
    assert result.exit_code == 0, result.output
    assert seen == {**depths, "stem": stem}


def test_bench_errors_are_one_line_not_tracebacks(tmp_path, tiny_dir):
    """A data set or run file bench cannot read ended in a traceback with status 1; --run ignored --limit."""
    import shutil

    data = tmp_path / "tiny"
    shutil.copytree(tiny_dir, data)
    (data / "dup.trec").write_text("q1 Q0 d1 1 2.0 r\nq1 Q0 d1 2 1.0 r\n")
    result = runner.invoke(app, ["bench", "--data", str(data), "--run", "dup.trec"])
    assert result.exit_code == 2 and "lists passage 'd1' again" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["bench", "--data", str(data), "--run", "dup.trec", "--limit", "2"])
    assert result.exit_code == 2 and "--limit: not used with --run" in result.output
    (data / "queries.jsonl").unlink()
    result = runner.invoke(app, ["bench", "--data", str(data), "--no-peers"])
    assert result.exit_code == 2 and "queries.jsonl" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_bench_scores_qrels_naming_documents_the_corpus_lacks_as_trec_eval_does(tmp_path, tiny_dir, monkeypatch):
    """`bench --data` refused such qrels, though TREC DL's judge passages of a whole collection; now they count as
    relevant and never retrieved (q1's second relevant passage is missing: its recall is 1/2), and it says so."""
    import json
    import shutil

    monkeypatch.setenv("EARLYRANK_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "tiny"
    shutil.copytree(tiny_dir, data)
    with (data / "qrels" / "test.tsv").open("a") as f:
        f.write("q1\tnot-in-corpus\t1\n")
    result = runner.invoke(app, ["bench", "--data", str(data), "--no-peers", "--depth", "5", "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "1 relevant judgement names a document the corpus lacks" in result.output
    record = json.loads((tmp_path / "out" / "tiny-test.json").read_text())
    assert record["relevant_missing_from_corpus"] == 1
    assert "not on this one" in result.output  # the operating point came with the model, not from this data
    assert "vs full (paired t-test p)" in result.output and "ECE (15 bins) of its candidates" in result.output
    assert record["command"] and f"(commit `{record['git_commit'][:8]}`" in result.output
    assert {r["config"]: r["R@100"] for r in record["rows"]}["recall: bm25"] == pytest.approx((0.5 + 1 + 1) / 3)


@pytest.mark.slow
def test_bench_reranking_the_top_one_keeps_recalls_list_below_it(tmp_path, tiny_dir, monkeypatch):
    """`bench --data --depth 1` scored each reranked list as one passage long: R@100 fell from recall's to the share
    of queries whose one passage was relevant. The rest of the hybrid list now follows, as in the service."""
    import json

    monkeypatch.setenv("EARLYRANK_CACHE", str(tmp_path / "cache"))
    result = runner.invoke(app, ["bench", "--data", str(tiny_dir), "--no-peers", "--depth", "1", "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = {r["config"]: r for r in json.loads((tmp_path / "out" / "tiny-test.json").read_text())["rows"]}
    assert rows["full rerank top-1"]["R@100"] == rows["recall: hybrid"]["R@100"] == 1.0
    lines = (tmp_path / "out" / "tiny-full_rerank_top-1.trec").read_text().splitlines()
    assert len(lines) > 3  # the run file holds the whole list, so trec_eval gives the figures printed
    # --relevance-level was taken and ignored without --run; tiny's judgements are all grade 1, so at level 2 no
    # passage is relevant to the binary measures, while nDCG@10 still reads the grades.
    result = runner.invoke(app, ["bench", "--data", str(tiny_dir), "--no-peers", "--depth", "1", "--relevance-level",
                                 "2", "--out", str(tmp_path / "level2")])
    assert result.exit_code == 0 and "count grade >= 2 as relevant" in result.output, result.output
    strict = {r["config"]: r for r in json.loads((tmp_path / "level2" / "tiny-test.json").read_text())["rows"]}
    assert strict["recall: hybrid"]["RR@10"] == strict["full rerank top-1"]["P@1"] == 0.0
    assert strict["recall: hybrid"]["nDCG@10"] == rows["recall: hybrid"]["nDCG@10"] > 0


@pytest.mark.slow
def test_bench_times_every_recall_mode_with_its_own_query_encoding(tmp_path, tiny_dir, monkeypatch):
    """Query vectors are cached, so hybrid, timed after dense, never encoded a query: 0.4 ms against dense's 9.8."""
    from earlyrank.engine.bench import recall_rows
    from earlyrank.engine.datasets import load_dataset
    from earlyrank.indexes import dense
    from earlyrank.indexes.store import build_index, load_index

    data = load_dataset(tiny_dir)
    index = load_index(build_index(data.corpus, tmp_path / "idx", progress=False))
    queries, qrels = data.split("test")
    encoded: list[str] = []
    real = dense.encode
    monkeypatch.setattr(dense, "encode", lambda texts, *a, **k: (encoded.extend(texts), real(texts, *a, **k))[1])
    recall_rows("tiny", queries, qrels, index, tmp_path, peers=False)
    assert all(encoded.count(q.text) == 2 for q in queries), encoded  # once for dense, once for hybrid
