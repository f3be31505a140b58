"""Splitting long documents into passages (`indexes.passages`, `indexes.passage_table`), measured with the
cross-encoder's real tokenizer (the `tokenizers` library alone: no model is loaded).

`MINUTES` is 30 sentences of 19 word pieces each ("the committee met on day 17 and discussed the budget , ...")
and a last one of 13 about a bridge: 583 word pieces. At 150 a passage holds 7 sentences (133 pieces; 8 would be
152) and repeats the last of the one before: sentences 0-6, 6-12, 12-18, 18-24, and 24-29 with the bridge (127).
"""

from __future__ import annotations

import pytest

from earlyrank.engine.model_files import DEFAULT_MODEL
from earlyrank.indexes.passage_table import PassageTable, by_document
from earlyrank.indexes.passages import PassageParams, Splitter, WordPieces, Words, cut_tokens, passage_spans
from earlyrank.indexes.sentences import sentence_spans
from earlyrank.indexes.types import Document, Hit

TOKENIZER = DEFAULT_MODEL / "tokenizer.json"
FILLER = [f"The committee met on day {i} and discussed the budget, the schedule and the catering at length."
          for i in range(30)]
FACT = "The treasurer reported that the harbour bridge will reopen in March."
MINUTES = " ".join([*FILLER, FACT])


@pytest.fixture(scope="module")
def pieces() -> WordPieces:
    return WordPieces(TOKENIZER)


def spans_of(text: str, pieces: WordPieces, size: int = 150, overlap: int = 1) -> list[tuple[int, int]]:
    return passage_spans(text, size, overlap, pieces)


def test_the_tokenizer_counts_word_pieces_as_the_cross_encoder_reads_them(pieces):
    assert pieces.counts([FILLER[7], FILLER[17], FACT, "Unbelievably"]) == [19, 19, 13, 5]  # un ##bel ##ie ##va ##bly
    assert pieces.counts([MINUTES]) == [30 * 19 + 13]


def test_passages_are_whole_sentences_of_at_most_the_size_each_as_full_as_it_can_be(pieces):
    spans = spans_of(MINUTES, pieces)
    sentences = sentence_spans(MINUTES)
    starts, ends = {a for a, _ in sentences}, {b for _, b in sentences}
    assert len(spans) == 5 and spans[0][0] == 0 and spans[-1][1] == len(MINUTES)
    for a, b in spans:
        assert a in starts and b in ends  # a passage never starts or ends inside a sentence
    sizes = pieces.counts([MINUTES[a:b] for a, b in spans])
    assert sizes == [133, 133, 133, 133, 127]
    assert MINUTES[spans[-1][0]:spans[-1][1]].endswith(FACT)


@pytest.mark.parametrize("overlap", [0, 1, 2])
def test_each_passage_repeats_the_last_overlap_sentences_of_the_one_before(pieces, overlap):
    spans = spans_of(MINUTES, pieces, overlap=overlap)
    for (a1, b1), (a2, b2) in zip(spans, spans[1:], strict=False):
        first, second = sentence_spans(MINUTES[a1:b1]), sentence_spans(MINUTES[a2:b2])
        shared = [MINUTES[a1 + x:a1 + y] for x, y in first[len(first) - overlap:]] if overlap else []
        assert [MINUTES[a2 + x:a2 + y] for x, y in second[:overlap]] == shared
        assert (a2 < b1) == (overlap > 0) and b2 > b1  # overlapping only when asked, always moving on


def test_the_overlap_never_takes_more_than_half_a_passage(pieces):
    """At 60 word pieces a passage holds three 19-piece sentences; two of them (38) would be more than half."""
    text = " ".join(FILLER[:9])
    spans = spans_of(text, pieces, size=60, overlap=2)
    assert [len(sentence_spans(text[a:b])) for a, b in spans] == [3, 3, 3, 3]  # 0-2, 2-4, 4-6, 6-8
    assert spans_of(text, pieces, size=30, overlap=1) == sentence_spans(text)  # 19 > 15: nothing repeated


def test_no_overlap_where_it_would_leave_no_room_for_the_next_sentence(pieces):
    long = " ".join(["Unbelievably"] * 27) + "."  # 136 word pieces: with the 19 before it, 155
    text = f"{FILLER[0]} {long}"
    assert spans_of(text, pieces) == [(0, len(FILLER[0])), (len(FILLER[0]) + 1, len(text))]


def test_a_sentence_longer_than_the_size_is_cut_between_words(pieces):
    giant = " ".join(["unbelievably"] * 200) + "."  # one sentence of 1,001 word pieces, 5 a word
    spans = spans_of(giant, pieces, size=148)
    assert pieces.counts([giant[a:b] for a, b in spans]) == [145] * 6 + [131]  # 29 words a piece
    assert all(giant[a:b].startswith("unbelievably") for a, b in spans)  # never inside a word
    assert "".join(giant[a:b] + " " for a, b in spans).strip() == giant  # nothing lost, nothing repeated


def test_a_word_longer_than_the_size_is_cut_inside_it():
    tokens = [(i, i + 1, 0) for i in range(5)]  # one word of five tokens
    assert cut_tokens(tokens, 2) == [(0, 2, 2), (2, 4, 2), (4, 5, 1)]


def test_a_short_text_is_one_passage_the_whole_text(pieces):
    assert spans_of("  One sentence only.  ", pieces) == [(0, 22)]
    assert spans_of(" ".join(FILLER[:7]), pieces) == [(0, len(" ".join(FILLER[:7])))]  # 133 pieces


def test_words_measure_the_rerank_endpoints_chunks():
    assert Words().counts(["one  two\nthree", "", "a-b"]) == [3, 0, 1]
    text = " ".join(FILLER[:10])  # 17 words a sentence
    spans = passage_spans(text, 60, 1, Words())
    assert [len(text[a:b].split()) for a, b in spans] == [51, 51, 51, 51, 34]  # sentences 0-2, 2-4, ..., 8-9


def test_the_table_names_a_long_documents_passages_and_keeps_short_documents_as_they_are():
    splitter = Splitter(PassageParams(), TOKENIZER)
    short = Document("d1", "Cats purr.", "Cats", {"topic": "animals"})
    long = Document("m1", MINUTES, "Minutes", {"topic": "council"})
    table = PassageTable.build([short, long], splitter)
    assert table.units[0] is short and table.source("d1").number == 0 and table.split
    assert [u.id for u in table.units[1:]] == ["m1#p0", "m1#p1", "m1#p2", "m1#p3", "m1#p4"]
    for unit, where in zip(table.units[1:], table.sources[1:], strict=True):
        assert where.doc_id == "m1" and unit.text == MINUTES[where.start:where.end]  # the offsets slice exactly
        assert unit.title == "Minutes" and unit.metadata == {"topic": "council"}
    assert not PassageTable.build([short], splitter).split


def test_a_document_id_of_the_passage_form_is_refused_when_indexed():
    """"m1#p2" was accepted while the index kept documents whole, and later blocked adding a long "m1" with a
    message that did not say which document to rename; any id ending in #pN is now refused when it is indexed."""
    docs = [Document("m1", MINUTES), Document("m1#p2", "Another document.")]
    for splitter in (Splitter(PassageParams(), TOKENIZER), None):
        with pytest.raises(ValueError, match=r"document id 'm1#p2' ends in '#p' and a number.*rename it.*'m1-p2'"):
            PassageTable.build(docs, splitter)
    assert len(PassageTable(docs).units) == 2  # an index built before the check still loads
    assert len(PassageTable.build([Document("m1#part", "x"), Document("p#p", "y")], None).units) == 2


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="tokens=-1"):
        PassageParams(tokens=-1)
    with pytest.raises(ValueError, match="no splitter"):
        Splitter(PassageParams(tokens=0), TOKENIZER)


def test_by_document_keeps_each_documents_best_passage_in_order():
    table = PassageTable.build([Document("m1", MINUTES), Document("d1", "Cats purr.")],
                               Splitter(PassageParams(), TOKENIZER))
    hits = [Hit(i, 1.0 / r, r) for r, i in enumerate(["m1#p3", "m1#p0", "d1", "m1#p4"], 1)]
    best = by_document(hits, table.source, 10)
    assert [(h.doc_id, h.rank, h.document_id) for h in best] == [("m1#p3", 1, "m1"), ("d1", 2, "d1")]
    assert best[0].passage is not None and best[0].passage.number == 3
    assert [h.doc_id for h in by_document(hits, table.source, 1)] == ["m1#p3"]
