"""Scale-out on Ray: the Ray paths give what the single-machine paths give, on a 2-CPU local cluster.

(a) A dense index built by Ray actors has the single-machine build's manifest parts, vectors and results.
(b) `score_split_ray` with fake scorers in two actors writes and returns the records `score_split` does.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys

import numpy as np
import pytest
from conftest import TINY, FakeScorer
from typer.testing import CliRunner

from earlyrank.cli import app
from earlyrank.engine.calibration import Calibration
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.evaluation import evaluate_run, run_from_hits
from earlyrank.engine.offline import replay, score_split
from earlyrank.engine.stopping import FullRerank, Threshold
from earlyrank.indexes.store import build_index, load_index

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed: pip install 'earlyrank[ray]'")
QUESTIONS = ["Which city is the French seat of government?", "Which animals hunt mice?", "capital of France",
             "How do plants make sugar from sunlight?"]


@pytest.fixture(scope="module")
def ray_cluster():
    from earlyrank.indexes.ray_session import ray_session

    with ray_session(num_cpus=2) as ray:
        yield ray


@pytest.fixture(scope="module")
def tiny_ds():
    return load_dataset(TINY)


@pytest.fixture(scope="module")
def local_index(tiny_ds, tmp_path_factory):
    return load_index(build_index(tiny_ds.corpus, tmp_path_factory.mktemp("local") / "idx", progress=False))


def _vectors(loaded) -> np.ndarray:
    return loaded.dense.index.reconstruct_n(0, loaded.dense.index.ntotal)


@pytest.mark.slow
@needs_ray
@pytest.mark.usefixtures("ray_cluster")
def test_ray_dense_build_equals_the_local_build(tiny_ds, local_index, tmp_path):
    from earlyrank.indexes.ray_build import RayDenseEncoder

    encoder = RayDenseEncoder(workers=2, rows_per_block=5)  # 12 passages in 3 blocks over 2 actors
    on_ray = load_index(build_index(tiny_ds.corpus, tmp_path / "idx", progress=False, encoder=encoder))
    assert on_ray.manifest["parts"] == local_index.manifest["parts"]
    assert on_ray.manifest["corpus"] == local_index.manifest["corpus"]
    assert set(on_ray.manifest["files"]) == set(local_index.manifest["files"])
    np.testing.assert_allclose(_vectors(on_ray), _vectors(local_index), atol=1e-5, rtol=0)
    for mode in ("dense", "hybrid"):
        for question in QUESTIONS:
            ours = on_ray.retriever(mode).search(question, 12)
            theirs = local_index.retriever(mode).search(question, 12)
            assert [h.doc_id for h in ours] == [h.doc_id for h in theirs]
            np.testing.assert_allclose([h.score for h in ours], [h.score for h in theirs], atol=1e-5)


def _without_seconds(cache) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in cache.read_text().splitlines()]


@pytest.mark.slow
@needs_ray
def test_ray_scoring_writes_and_returns_what_score_split_does(tiny_ds, local_index, tmp_path, caplog, ray_cluster):
    from earlyrank.engine.ray_scoring import score_split_ray

    # The class is its own factory. Ray workers cannot import pytest's conftest: ship its code by value.
    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[FakeScorer.__module__])
    caplog.set_level(logging.INFO, logger="earlyrank.engine.ray_scoring")
    queries = list(tiny_ds.queries.values())
    qrels = {**tiny_ds.qrels["train"], **tiny_ds.qrels["test"]}
    local = score_split(queries, local_index, FakeScorer(), "hybrid", 8, tmp_path / "local.jsonl", progress=False)
    on_ray = score_split_ray(queries, local_index, FakeScorer, "hybrid", 8, tmp_path / "ray.jsonl", workers=2,
                             progress=False)
    assert _without_seconds(tmp_path / "ray.jsonl") == _without_seconds(tmp_path / "local.jsonl")
    for a, b in zip(on_ray, local, strict=True):
        assert (a.query_id, a.text, a.candidates) == (b.query_id, b.text, b.candidates)
        np.testing.assert_array_equal(a.logits, b.logits)
    for policy in (FullRerank(depth=8, chunk=4), Threshold(tau=0.5, chunk=2, depth=8)):
        ours, pairs_ours, _ = replay(on_ray, policy, Calibration())
        theirs, pairs_theirs, _ = replay(local, policy, Calibration())
        assert run_from_hits(ours) == run_from_hits(theirs) and pairs_ours.tolist() == pairs_theirs.tolist()
        assert evaluate_run(qrels, run_from_hits(ours)) == evaluate_run(qrels, run_from_hits(theirs))
    costs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ray worker")]
    assert len(costs) == 2 and sum(int(c.split(": ")[1].split()[0]) for c in costs) == len(queries)
    # A cut last line is rescored on Ray alone; everything else comes from the cache.
    lines = (tmp_path / "ray.jsonl").read_text().splitlines()
    (tmp_path / "ray.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:15])
    caplog.clear()
    again = score_split_ray(queries, local_index, FakeScorer, "hybrid", 8, tmp_path / "ray.jsonl", progress=False)
    np.testing.assert_array_equal(again[-1].logits, local[-1].logits)
    assert sum(int(r.getMessage().split(": ")[1].split()[0]) for r in caplog.records) == 1


def test_ray_options_without_ray_say_how_to_install(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    for args in (["index", str(tiny_dir), "--out", str(tmp_path / "i"), "--ray", "local"],
                 ["bench", "--data", str(tiny_dir), "--ray", "local"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert result.output.strip() == "error: Ray is not installed; install the extra with: pip install " \
                                        "'earlyrank[ray]'"
