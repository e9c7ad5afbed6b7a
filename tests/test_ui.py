"""Exact HTML of the chat app's rendering, including hostile model and document text."""

from __future__ import annotations

import re

import pytest

from qa.answer.prompting import REFUSAL
from qa.serve import html as ui
from qa.types import Answer, Chunk, Citation, Hit

DOC = "Intro line.\nIndia & Pakistan <b>joined</b>. Later text."
XSS = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "[link](javascript:alert(1))"]


def _hit(text: str, start: int, rank: int = 1, title: str = "SCO <news>") -> Hit:
    chunk = Chunk(id=f"c{rank}", doc_id="d1", text=text, start=start, end=start + len(text))
    return Hit(chunk=chunk, score=0.032787, rank=rank, dense_score=0.61234, bm25_score=4.5,
               source="sco.txt", title=title)


def _citation(hit: Hit, snippet: str, supported: bool = True, n: int = 1) -> Citation:
    start = DOC.index(snippet)
    return Citation(n=n, chunk_id=hit.chunk.id, doc_id="d1", source=hit.source,
                    title=hit.title, start=start, end=start + len(snippet), snippet=snippet,
                    supported=supported, support=1.0 if supported else 0.2)


def test_chat_escape_makes_html_and_markdown_inert() -> None:
    assert ui.chat_escape("a<b> & it's [x](y)") == (
        "a&#60;b&#62; &#38; it&#39;s &#91;x&#93;&#40;y&#41;")


def test_answer_markers_become_chips_linking_to_their_sources() -> None:
    hit = _hit(DOC[12:], 12)
    cite = _citation(hit, "India & Pakistan <b>joined</b>.")
    out = ui.answer_html("India & Pakistan [1].", 3, [cite])
    assert out == ('India &#38; Pakistan <a class="qa-cite" href="#qa-t3-s1" '
                   'title="SCO &lt;news&gt;">[1]</a>.')


def test_short_answer_is_bold_above_the_answer_and_escaped() -> None:
    hit = _hit(DOC[12:], 12)
    cite = _citation(hit, "India & Pakistan <b>joined</b>.")
    out = ui.answer_html("India & Pakistan [1].", 3, [cite], short="India & *Pakistan*")
    assert out.startswith('<b class="qa-short">India &#38; &#42;Pakistan&#42;</b><br>India')
    assert ui.answer_html(REFUSAL, 1, refused=True, short="x") == ui.answer_html(
        REFUSAL, 1, refused=True)  # a refusal has no short answer


def test_unsupported_and_unresolved_markers() -> None:
    hit = _hit(DOC[12:], 12)
    cite = _citation(hit, "India & Pakistan <b>joined</b>.", supported=False, n=2)
    out = ui.answer_html("Yes [2][1, 3]", 1, [cite])
    assert out == ('Yes <a class="qa-cite qa-unsupported" href="#qa-t1-s2" '
                   'title="SCO &lt;news&gt;">[2]</a>'
                   '<a class="qa-cite" href="#qa-t1-s1">[1]</a>'
                   '<a class="qa-cite" href="#qa-t1-s3">[3]</a>')


def test_refusal_is_styled_apart() -> None:
    assert ui.answer_html(REFUSAL, 1, refused=True) == (
        '<span class="qa-refusal">The documents do not say.</span> '
        '<span class="qa-note">(closest passages under Sources)</span>')


def test_sources_quote_the_passage_with_the_cited_span_marked() -> None:
    hit = _hit(DOC[12:], 12)
    cite = _citation(hit, "India & Pakistan <b>joined</b>.")
    answer = Answer(question="Who joined?", text="India & Pakistan [1].", citations=[cite],
                    hits=[hit], refused=False, query="Who joined?")
    assert ui.sources_html(answer, 2) == (
        '<div class="qa-turn" id="qa-t2"><p class="qa-query">Question: <q>Who joined?</q></p>'
        '<div class="qa-source" id="qa-t2-s1"><div class="qa-head">'
        '<span class="qa-chip">[1]</span> <b>SCO &lt;news&gt;</b> '
        '<span class="qa-meta">sco.txt, characters 12–43</span> '
        '<span class="qa-check qa-ok">✓ supported</span></div>'
        '<blockquote class="qa-passage"><mark>India &amp; Pakistan &lt;b&gt;joined&lt;/b&gt;.'
        "</mark> Later text.</blockquote></div></div>")


def test_sources_show_scores_rewritten_question_and_failed_support() -> None:
    hit = _hit(DOC, 0)
    cite = _citation(hit, "India & Pakistan <b>joined</b>.", supported=False)
    answer = Answer(question="And then?", text="Joined [1].", citations=[cite], hits=[hit],
                    refused=False, query="Who joined the SCO?")
    out = ui.sources_html(answer, 1, show_scores=True)
    assert '<p class="qa-query">Rewritten question: <q>Who joined the SCO?</q></p>' in out
    assert ('<span class="qa-check qa-bad">✗ not supported by this passage</span> '
            '<span class="qa-scores">score 0.0328 · similarity 0.61 · BM25 4.50</span>') in out
    assert ('<blockquote class="qa-passage">Intro line.\n<mark>India &amp; Pakistan '
            "&lt;b&gt;joined&lt;/b&gt;.</mark> Later text.</blockquote>") in out


def test_refusal_sources_list_the_closest_passages() -> None:
    hits = [_hit(f"passage {i}", 10 * i, rank=i) for i in range(1, 5)]
    answer = Answer(question="Capital of France?", text=REFUSAL, citations=[], hits=hits,
                    refused=True, query="Capital of France?")
    out = ui.sources_html(answer, 1)
    assert out.startswith(
        '<div class="qa-turn" id="qa-t1"><p class="qa-query">Question: '
        '<q>Capital of France?</q></p><p class="qa-refusal">The documents do not say. '
        "Closest passages (none answers the question):</p>"
        '<div class="qa-source qa-closest" id="qa-t1-s1">')
    assert out.count("qa-closest") == 3  # the top three only
    assert "passage 4" not in out


@pytest.mark.parametrize("payload", XSS)
def test_hostile_answer_text_comes_out_escaped(payload: str) -> None:
    out = ui.answer_html(f"{payload} [1]", 1)
    assert payload not in out
    assert "<img" not in out and "<script" not in out and "](" not in out
    # Only our own chip is markup; everything else is character references.
    assert re.sub(r'<a class="qa-cite" href="#qa-t1-s1">\[1\]</a>', "", out).count("<") == 0


@pytest.mark.parametrize("payload", XSS)
def test_hostile_passages_titles_and_questions_come_out_escaped(payload: str) -> None:
    text = f"Before {payload} after."
    hit = _hit(text, 0, title=payload)
    cite = Citation(n=1, chunk_id="c1", doc_id="d1", source=payload, title=payload, start=7,
                    end=7 + len(payload), snippet=payload, supported=True)
    answer = Answer(question=payload, text="x [1]", citations=[cite], hits=[hit],
                    refused=False, query=payload + "?")
    for out in (ui.sources_html(answer, 1, True), ui.searching_html(payload, payload, [hit], 1),
                ui.question_html(payload), ui.status_html(payload, payload, [payload], 1),
                ui.answer_html("x [1]", 1, [cite]), ui.message_html(payload)):
        assert "<img" not in out and "<script" not in out
        assert "onerror=alert(1)>" not in out or "&lt;img" in out
    marked = ui.sources_html(answer, 1)
    assert f"<mark>{ui.esc(payload)}</mark>" in marked


def test_chip_title_attribute_cannot_break_out() -> None:
    hit = _hit("x", 0, title='" onmouseover="alert(1)')
    cite = Citation(n=1, chunk_id="c1", doc_id="d1", source="s", title=hit.title, start=0,
                    end=1, snippet="x", supported=True)
    out = ui.answer_html("x [1]", 1, [cite])
    assert 'title="&quot; onmouseover=&quot;alert(1)"' in out


def test_snippet_not_at_its_offset_is_found_or_shown_alone() -> None:
    hit = _hit("abc def ghi", 100)
    moved = Citation(n=1, chunk_id="c1", doc_id="d1", source="s", title="t", start=0, end=3,
                     snippet="def", supported=True)
    answer = Answer(question="q", text="x [1]", citations=[moved], hits=[hit], refused=False)
    assert "abc <mark>def</mark> ghi" in ui.sources_html(answer, 1)
    gone = Citation(n=1, chunk_id="other", doc_id="d1", source="s", title="t", start=0, end=3,
                    snippet="a<b", supported=True)
    answer = Answer(question="q", text="x [1]", citations=[gone], hits=[hit], refused=False)
    assert '<blockquote class="qa-passage"><mark>a&lt;b</mark></blockquote>' in ui.sources_html(
        answer, 1)


def test_searching_panel_lists_retrieved_passages() -> None:
    hits = [_hit("one", 0, 1), _hit("two", 5, 2)]
    out = ui.searching_html("q?", "q?", hits, 4)
    assert '<p class="qa-pending">Retrieved 2 passages; writing the answer…</p>' in out
    assert 'id="qa-t4-s1"' in out and 'id="qa-t4-s2"' in out
    assert ui.searching_html("q?", "", [], 1).count("Searching…") == 1


def test_titles_come_from_the_documents() -> None:
    long = "A " * 60 + "title"
    assert ui.app_title(["Annual report 2024"]) == "Ask about: Annual report 2024"
    assert ui.app_title(["a", "b"]) == "Ask about 2 documents"
    assert len(ui.app_title([long])) <= len("Ask about: ") + 80


def test_status_line_names_model_and_documents() -> None:
    out = ui.status_html("qwen2.5-coder-1.5b", "loading model…", ["a.txt", "b.md"], 12)
    assert out == ('<p class="qa-status">Model: <b>qwen2.5-coder-1.5b</b> (loading model…) · '
                   "Documents: a.txt, b.md (2 files, 12 passages)</p>")
    many = ui.status_html("m", "ready", [f"{i}.txt" for i in range(5)], 9, note="rebuilt")
    assert "0.txt, 1.txt, 2.txt and 2 more (5 files, 9 passages)" in many
    assert many.endswith('<span class="qa-note">rebuilt</span></p>')
