"""PDF pages: page spans in the document and on disk, and the page of every citation in the
Answer, its JSON, the CLI's Sources list and the app's Sources panel."""

from __future__ import annotations

import json
from pathlib import Path

from qa.answer.pipeline import QA
from qa.cli import format_sources
from qa.config import Settings
from qa.index.embedding import Embedder
from qa.index.store import MANIFEST, build_index, load_index, stale_reasons
from qa.serve.html import sources_html
from tests.fakes import ScriptedGenerator
from tests.test_corpus import make_pdf

PAGES = [
    "The harbour report was written in Lisbon. It covers shipping in the year 2025.",
    "The new crane at pier seven lifts forty tonnes. It was built by Atlas Works.",
    "The harbour master is Maria Duarte. She took office in March.",
]


def _report(tmp_path: Path, settings: Settings, embedder: Embedder) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.pdf").write_bytes(make_pdf(PAGES, "Harbour report"))
    out = tmp_path / "index"
    build_index([docs], out, settings, embedder)
    return out


def test_pdf_pages_are_spans_of_the_document_and_survive_the_index(tmp_path, settings,
                                                                   embedder) -> None:
    index = load_index(_report(tmp_path, settings, embedder))
    [doc] = index.documents.values()
    assert doc.text == "\n\n".join(PAGES)
    assert [doc.text[a:b] for a, b in doc.pages] == PAGES
    assert doc.page_at(doc.text.index("Maria Duarte")) == 3
    rows = [json.loads(line) for line in (index.path / "documents.jsonl").open()]
    assert rows[0]["pages"] == [[a, b] for a, b in doc.pages]
    assert index.manifest["corpus"][0]["pages"] == 3


def test_citations_carry_the_page_of_the_cited_sentence(tmp_path, settings, embedder) -> None:
    index = load_index(_report(tmp_path, settings, embedder))
    generator = ScriptedGenerator("The crane at pier seven lifts forty tonnes [1].",
                                  "The harbour master is Maria Duarte [1].")
    qa = QA(settings, index, embedder, generator)
    crane = qa.answer("How much can the crane at pier seven lift?")
    master = qa.answer("Who is the harbour master?")
    assert not crane.refused and not master.refused
    [c2] = crane.citations
    [c3] = master.citations
    assert (c2.page, c2.snippet) == (2, "The new crane at pier seven lifts forty tonnes.")
    assert (c3.page, c3.snippet) == (3, "The harbour master is Maria Duarte.")
    assert crane.to_dict()["citations"][0]["page"] == 2
    assert f"  [1] report.pdf, page 3, characters {c3.start}-{c3.end} (supported)" in (
        format_sources(master).splitlines())
    assert (f'<span class="qa-meta">report.pdf, page 2, characters {c2.start}–{c2.end}</span>'
            in sources_html(crane, 1))


def test_citations_into_text_files_have_no_page(corpus_index, embedder, settings) -> None:
    qa = QA(settings, corpus_index, embedder,
            ScriptedGenerator("India and Pakistan were granted full membership [1]."))
    answer = qa.answer("Which countries were granted full membership of the SCO?")
    assert [c.page for c in answer.citations] == [None]
    assert ", page" not in format_sources(answer)


def test_a_pdf_indexed_without_pages_is_stale(tmp_path, settings, embedder) -> None:
    out = _report(tmp_path, settings, embedder)
    assert stale_reasons(out, [tmp_path / "docs"], settings, embedder) == []
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["corpus"][0]["pages"]  # what an index built before pages were kept holds
    (out / MANIFEST).write_text(json.dumps(manifest))
    [reason] = stale_reasons(out, [tmp_path / "docs"], settings, embedder)
    assert reason == ("corpus changed: new or edited ['report.pdf'], "
                      "removed or edited ['report.pdf']")
