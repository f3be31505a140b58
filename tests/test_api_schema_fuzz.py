"""Schemathesis attacks the app in process as ``schemathesis run`` attacks a server: every phase (examples,
coverage, fuzzing, stateful), positive and negative data, every one of its checks, over every operation of
/openapi.json, with a fake scorer over a BM25 index of the tiny corpus. Nothing may fail. The few exceptions (a
504 from answers and searches; positive-data acceptance where the schema cannot say what the server refuses)
are the repository's schemathesis.toml, loaded here, and docs/how-it-works.md says why.

This drives schemathesis's engine, the one its command line runs: its pytest loader (``from_fixture``) reads a
pytest-internal attribute that pytest 9 no longer has, and a Hypothesis strategy alone would run the fuzzing
phase only, where the checks for unsupported methods, missing headers and media types find nothing to check.
The run is deterministic: the same cases every time.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import FakeScorer
from test_api import build_tiny_index, make_app

from earlyrank.engine.pipeline import Pipeline

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.engine import Status, events, from_schema  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = {("/v1/answer", "POST"), ("/v1/search", "POST"), ("/v1/rerank", "POST"), ("/v2/rerank", "POST"),
              ("/v1/explain", "POST"), ("/v1/documents", "POST"), ("/v1/documents/{doc_id}", "DELETE"),
              ("/health", "GET"), ("/ready", "GET"), ("/info", "GET"), ("/metrics", "GET")}
EXAMPLES = int(os.environ.get("EARLYRANK_FUZZ_EXAMPLES", "50"))  # fuzzed cases per operation, both modes


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    index = build_tiny_index(tmp_path_factory.mktemp("fuzz"))
    app = make_app(Pipeline(index, FakeScorer(), mode="bm25"), depth=20, max_documents=50, max_query_chars=500,
                   max_document_chars=2000)
    config = SchemathesisConfig.from_path(ROOT / "schemathesis.toml")
    config.cache.enabled = False  # no .schemathesis/ folder in the working tree
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    schema.config.generation.update(modes=list(GenerationMode), max_examples=EXAMPLES, deterministic=True,
                                    database="none")
    schema.config.update(continue_on_failure=True)
    return schema


def test_every_operation_is_in_the_schema(api_schema):
    found = {(op.path, op.method.upper()) for op in (r.ok() for r in api_schema.get_all_operations())}
    assert found == OPERATIONS


def describe(label: str, check: str, failure, response) -> str:
    """One failure as a reader needs it: operation, check, what was wrong, the response and a reproduction."""
    got = f"{response.status_code} {response.content[:300]!r}" if response is not None else "no response"
    return (f"{label} [{check}] {failure.failure.title}: {failure.failure.message}\n  got {got}\n  "
            f"{failure.code_sample}")


def test_schemathesis_with_every_check_finds_nothing(api_schema):
    failures: list[str] = []
    tested: dict[str, set[str]] = defaultdict(set)  # phase -> operations run in it
    for event in from_schema(api_schema).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.status is not Status.SKIP:
                tested[event.phase.value].add(event.label or "")
            for case_id, checks in event.recorder.checks.items():
                interaction = event.recorder.interactions.get(case_id)
                failures += [describe(event.label or "", c.name, c.failure_info,
                                      interaction.response if interaction else None)
                             for c in checks if c.failure_info is not None]
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: error {event.info.format()}")
        elif isinstance(event, events.FatalError):
            failures.append(f"schemathesis failed: {event.exception!r}")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(dict.fromkeys(failures))
    labels = {f"{method} {path}" for path, method in OPERATIONS}
    assert tested["coverage"] == labels and tested["fuzzing"] == labels
    assert tested["stateful"]  # adding then deleting documents: the checks for deleted resources have work
