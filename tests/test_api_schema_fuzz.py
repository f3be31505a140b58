"""Schemathesis fuzzes the app in process from its own /openapi.json: valid and invalid requests alike must
get documented statuses with bodies matching the documented schemas, and never a server error (a 504, the
documented answer to a time budget too small to rerank anything, is the one 5xx allowed).

Schema-valid requests may still be refused with a 422 for what the schema cannot say: limits set in the
settings, a recall mode this index was built without, `rank_fields` naming fields a document lacks. So the
check that every schema-valid request succeeds is left out; invalid ones must still be rejected with a 4xx.

Each operation is driven through ``APIOperation.as_strategy`` under Hypothesis directly: schemathesis's own
pytest loader (``from_fixture``) reads a pytest-internal attribute that pytest 9 no longer has.
"""

from __future__ import annotations

import os

import pytest
from conftest import FakeScorer
from hypothesis import HealthCheck, given, settings
from test_api import build_tiny_index, make_app

from earlyrank.engine.pipeline import Pipeline

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance  # noqa: E402

OPERATIONS = [("/v1/answer", "POST"), ("/v1/search", "POST"), ("/v1/rerank", "POST"), ("/v2/rerank", "POST"),
              ("/v1/explain", "POST"), ("/v1/documents", "POST"), ("/v1/documents/{doc_id}", "DELETE"),
              ("/health", "GET"),
              ("/ready", "GET"), ("/info", "GET")]
EXAMPLES = int(os.environ.get("EARLYRANK_FUZZ_EXAMPLES", "30"))  # per case; raise it for a deeper run


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    index = build_tiny_index(tmp_path_factory.mktemp("fuzz"))
    app = make_app(Pipeline(index, FakeScorer(), mode="bm25"), depth=20, max_documents=50, max_query_chars=500,
                   max_document_chars=2000)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def no_server_error_but_timeouts(ctx, response, case) -> bool | None:
    if response.status_code >= 500 and response.status_code != 504:
        raise AssertionError(f"{response.status_code} from {case.method} {case.path}: {response.text[:500]}")
    return None


def test_every_operation_is_fuzzed(api_schema):
    found = {(op.path, op.method.upper()) for op in (r.ok() for r in api_schema.get_all_operations())}
    assert found == set(OPERATIONS)


CASES = [(path, method, mode) for path, method in OPERATIONS for mode in GenerationMode
         if method == "POST" or mode is GenerationMode.POSITIVE]  # a GET with no parameters has no invalid form


@pytest.mark.parametrize("path, method, mode", CASES, ids=[f"{m} {p} {g.value}" for p, m, g in CASES])
def test_the_api_matches_its_schema(api_schema, path, method, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def check(case) -> None:
        case.call_and_validate(excluded_checks=[not_a_server_error, ignored_auth, positive_data_acceptance],
                               additional_checks=[no_server_error_but_timeouts])

    check()
