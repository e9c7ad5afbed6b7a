"""Citation markers: parsing, cleaning, streaming without half markers, support, spans."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qa.answer.citations import (
    MarkerStream,
    cite_phrase,
    clean_markers,
    find_markers,
    repair,
    resolve,
    strip_markers,
    support,
)
from qa.types import Chunk, Hit

DOC = ("The event was held in New York on 27 November 2018. "
       "India and Pakistan were granted full membership. Bananas are yellow.")


def _hit(rank: int, start: int, end: int) -> Hit:
    chunk = Chunk(id=f"c{rank}", doc_id="d", text=DOC[start:end], start=start, end=end)
    return Hit(chunk=chunk, score=1.0, rank=rank, dense_score=0.5, source="a.txt", title="A")


_SPLIT = DOC.index(" Bananas")
HITS = [_hit(1, 0, _SPLIT), _hit(2, _SPLIT + 1, len(DOC))]


def test_find_markers_reads_single_and_grouped_numbers() -> None:
    found = find_markers("A [1]. B [2, 3][4].")
    assert [m.numbers for m in found] == [(1,), (2, 3), (4,)]
    assert [("A [1]. B [2, 3][4].")[m.start:m.end] for m in found] == [" [1]", " [2, 3]", "[4]"]


def test_clean_markers_drops_out_of_range_numbers() -> None:
    assert clean_markers("A [1]. B [7]. C [2, 9, 2].", 3) == "A [1]. B. C [2]."
    assert clean_markers("Zero [0] and list [x] stay [1]", 1) == "Zero and list [x] stay [1]"


def test_strip_markers() -> None:
    assert strip_markers("India [1][2] and Pakistan [3].") == "India and Pakistan."


def test_support_counts_content_words_found_in_passage() -> None:
    assert support("India and Pakistan joined", DOC) == 2 / 3  # india, pakistan; not "joined"
    assert support("the of and", DOC) == 0.0
    assert support("Bananas are yellow", DOC) == 1.0
    # A number the passage does not hold makes an otherwise matching claim unsupported.
    assert support("India and Pakistan joined in 2020", DOC) == 2 / 4 / 4
    assert support("The event was held on 27 November 2018", DOC) == 1.0


def test_a_number_taken_from_the_question_is_no_invention() -> None:
    passage = "Manning and Newton set the record for the largest age gap (Newton was 26)."
    question = "How old was Newton in Super Bowl 50?"
    assert support("Newton was 26 in Super Bowl 50.", passage, question) == 1.0
    assert support("Newton was 27 in Super Bowl 50.", passage, question) == 0.0 / 4
    # new words 26 and 51; 51 is in neither: half the words, quartered
    assert support("Newton was 26 in Super Bowl 51.", passage, question) == 0.5 / 4


def test_a_yes_does_not_count_against_support() -> None:
    passage = "The event was described as a tradition of the SCO."
    question = "Was the event described as a tradition?"
    assert support("Yes, the event was described as a tradition", passage, question) == 1.0
    assert support("Yes, it was a festival", passage, question) == 0.0


def test_resolve_maps_citations_to_exact_sentence_spans() -> None:
    text = "India and Pakistan became full members [1][2]. It rained [5]."
    citations = resolve(text, HITS, min_support=0.5)
    assert [(c.n, c.supported) for c in citations] == [(1, True), (2, False)]
    first = citations[0]
    assert DOC[first.start:first.end] == "India and Pakistan were granted full membership."
    assert first.snippet == DOC[first.start:first.end]
    assert (first.source, first.chunk_id) == ("a.txt", "c1")


def test_marker_after_full_stop_belongs_to_previous_sentence() -> None:
    citations = resolve("Bananas are yellow. [2]", HITS, 0.5)
    assert [(c.n, c.supported, DOC[c.start:c.end]) for c in citations] == [
        (2, True, "Bananas are yellow.")]


def test_marker_stream_holds_back_partial_markers() -> None:
    stream = MarkerStream(k=2)
    assert stream.feed("New York [") == "New York"
    assert stream.feed("1") == ""
    assert stream.feed("] and [") == " [1] and"
    assert stream.feed("9] end") == " end"
    assert stream.flush() == ""


_pieces = st.lists(st.sampled_from(["a", " ", "[", "]", "1", "2", "9", ",", ".", "x", "[1]",
                                    " [3]", "[12"]), max_size=40)


@given(pieces=_pieces, k=st.integers(1, 4))
def test_property_streamed_text_equals_cleaned_text_and_never_shows_half_markers(
        pieces: list[str], k: int) -> None:
    stream = MarkerStream(k)
    final = clean_markers("".join(pieces), k)
    shown = ""
    for piece in pieces:
        shown += stream.feed(piece)
        assert final.startswith(shown)  # nothing shown is ever taken back
    shown += stream.flush()
    assert shown == final


@given(numbers=st.lists(st.integers(0, 30), min_size=1, max_size=5), k=st.integers(1, 10))
def test_property_clean_keeps_exactly_the_valid_numbers(numbers: list[int], k: int) -> None:
    text = "Claim [" + ", ".join(map(str, numbers)) + "]."
    kept = [n for m in find_markers(clean_markers(text, k)) for n in m.numbers]
    assert kept == list(dict.fromkeys(n for n in numbers if 1 <= n <= k))


def test_repair_repoints_unsupported_markers_and_keeps_supported_ones() -> None:
    assert repair("India and Pakistan were granted full membership [2].", HITS, 0.5) == (
        "India and Pakistan were granted full membership [1].")
    assert repair("Bananas are yellow. [2] India and Pakistan were granted membership [1][2].",
                  HITS, 0.5) == ("Bananas are yellow [2]. India and Pakistan were granted "
                                 "membership [1].")
    # Nothing supports the claim: the model's own marker stays (and is flagged unsupported).
    assert repair("Something unrelated [1].", HITS, 0.5) == "Something unrelated [1]."
    assert repair("No markers here", HITS, 0.5) == "No markers here"


def test_the_sentence_stating_the_short_answer_cites_a_passage_that_holds_it() -> None:
    passages = ["The bridge over the Ems opened in 1997 after four years of work.",
                "The bridge over the Ems was planned by the engineer Tove Lind in 1990."]
    hits = [Hit(chunk=Chunk(id=f"c{n}", doc_id=f"d{n}", text=t, start=0, end=len(t)),
                score=1.0, rank=n, dense_score=0.5, source="a.txt", title="A")
            for n, t in enumerate(passages, 1)]
    question = "When did the bridge over the Ems open?"
    answer = "The bridge over the Ems opened in 1997 [2]. It took four years [1]."
    assert cite_phrase(answer, hits, "1997", 0.5, question) == (
        "The bridge over the Ems opened in 1997 [1]. It took four years [1].")
    # A citation of a holder stays; a phrase no passage holds, or an empty one, changes nothing.
    assert cite_phrase("It opened in 1997 [1][2].", hits, "1997", 0.5, question) == (
        "It opened in 1997 [1][2].")
    assert cite_phrase(answer, hits, "in 2001", 0.5, question) == answer
    assert cite_phrase(answer, hits, "", 0.5, question) == answer
    # The holder must support the sentence: a sentence its passage does not bear out keeps
    # its marker.
    assert cite_phrase("Tove Lind designed the 1997 towers in Oslo [2].", hits, "1997", 0.5,
                       question) == "Tove Lind designed the 1997 towers in Oslo [2]."
