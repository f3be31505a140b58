"""The word-piece id cache: bounded in bytes, least recently used out first, safe across threads."""

from __future__ import annotations

import threading

import pytest

from earlyrank.engine.token_cache import TokenCache, entry_bytes


def fake_tokenize(calls: list[list[str]]):
    def tokenize(texts: list[str]) -> list[list[int]]:
        calls.append(list(texts))
        return [[len(t), *range(len(t))] for t in texts]
    return tokenize


def test_each_text_is_tokenized_once_and_returned_in_input_order():
    calls: list[list[str]] = []
    cache = TokenCache()
    first = cache.get_many(["ab", "c", "ab"], fake_tokenize(calls))
    second = cache.get_many(["c", "ab"], fake_tokenize(calls))
    assert [list(ids) for ids in first] == [[2, 0, 1], [1, 0], [2, 0, 1]]
    assert [list(ids) for ids in second] == [[1, 0], [2, 0, 1]]
    assert calls == [["ab", "c"]]  # duplicates tokenized once, the second call from the cache


def test_the_byte_bound_holds_and_evicts_the_least_recently_used():
    calls: list[list[str]] = []
    texts = [f"text number {i}" for i in range(10)]
    one = entry_bytes(texts[0], TokenCache().get_many([texts[0]], fake_tokenize([]))[0])
    cache = TokenCache(max_bytes=3 * one)
    cache.get_many(texts[:3], fake_tokenize(calls))
    cache.get_many([texts[0]], fake_tokenize(calls))  # text 0 is now the most recently used
    cache.get_many([texts[3]], fake_tokenize(calls))  # evicts text 1, the least recently used
    assert len(cache) == 3 and cache.bytes_used <= 3 * one
    calls.clear()
    cache.get_many([texts[0], texts[2], texts[3]], fake_tokenize(calls))
    assert calls == []
    cache.get_many([texts[1]], fake_tokenize(calls))
    assert calls == [[texts[1]]]


def test_a_zero_budget_caches_nothing_and_a_negative_one_is_refused():
    cache = TokenCache(max_bytes=0)
    assert [list(i) for i in cache.get_many(["x"], fake_tokenize([]))] == [[1, 0]]
    assert len(cache) == 0 and cache.bytes_used == 0
    with pytest.raises(ValueError, match="max_bytes"):
        TokenCache(max_bytes=-1)


def test_threads_filling_past_the_cap_never_fail_and_stay_under_it():
    """The old cache cleared itself at its cap while another thread read it: a KeyError (a 500) under load."""
    cache = TokenCache(max_bytes=20_000)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for round_ in range(200):
                texts = [f"passage {seed} {round_} {j}" for j in range(8)]
                ids = cache.get_many(texts, fake_tokenize([]))
                assert [i[0] for i in ids] == [len(t) for t in texts]
        except BaseException as e:  # noqa: BLE001 - any failure in a thread must fail the test
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert 0 < cache.bytes_used <= 20_000
