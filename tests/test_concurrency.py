"""Searches running while the index is rebuilt and swapped: no exception, no mixed versions.

The CI run lasts a few seconds; QA_SOAK=1 (`make soak`) runs the 60 s of the acceptance test.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.index.embedding import Embedder
from qa.index.store import Index, build_index, load_index
from qa.types import Hit
from tests.conftest import ARTICLE
from tests.fakes import ScriptedGenerator

SECONDS = 60.0 if os.environ.get("QA_SOAK") == "1" else 8.0
SEARCHERS, ANSWERERS = 6, 2  # 8 threads in all search the live index
HARBOUR = {
    "cranes.md": "# Harbour cranes\n\nThe harbour of Port Lune runs twelve ship-to-shore cranes. "
                 "Each crane lifts forty containers an hour. The cranes were bought from a "
                 "Finnish maker in 2011 and rebuilt in 2019 after a storm bent two booms.\n",
    "tides.md": "# Tides\n\nPort Lune has a tidal range of six metres. Ships over 14 metres of "
                "draught enter only at high water. The pilots' station on the breakwater "
                "watches the channel day and night.\n",
    "unions.md": "# Dock workers\n\nThe dock workers' union of Port Lune signed a five-year "
                 "agreement in 2018. It fixed shifts of eight hours and a bonus for night work "
                 "in winter.\n",
}
QUESTIONS = ["Which countries became full members of the SCO?", "How many cranes does the "
             "harbour run?", "What is the tidal range?", "When was the union agreement signed?",
             "What did the Secretary-General say about terrorism?", "storm booms 2019"]
REPLY = "The answer is in the passage [1]."


@dataclass
class Versions:
    """The chunk ids of each corpus's build, and what the threads saw."""

    ids: dict[str, frozenset[str]]
    seen: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def version_of(self, hits: list[Hit]) -> str:
        """The one version all hits belong to (AssertionError when none or several)."""
        ids = {h.chunk.id for h in hits}
        owners = [name for name, chunk_ids in self.ids.items() if ids <= chunk_ids]
        assert len(owners) == 1, f"hits {sorted(ids)} belong to versions {owners}"
        return owners[0]

    def record(self, name: str) -> None:
        with self.lock:
            self.seen[name] = self.seen.get(name, 0) + 1


def _check_hits(hits: list[Hit], versions: Versions, indexes: dict[str, Index],
                qa: QA | None = None) -> str:
    """The version of hits, after checking each hit is that version's chunk and document and
    carries the number the model saw (its rank, or with `qa` reading a small index whole, its
    chunk's number in that index)."""
    assert hits, "a search returned nothing"
    name = versions.version_of(hits)
    index = indexes[name]
    for hit in hits:
        assert hit.chunk == index.chunks[index.row_of[hit.chunk.id]]
        document = index.documents[hit.chunk.doc_id]
        assert (hit.source, hit.title) == (document.source, document.title)
        assert document.text[hit.chunk.start:hit.chunk.end] == hit.chunk.text
    whole = {h.chunk.id: h.rank for h in qa.whole_corpus(index)} if qa else {}
    assert [h.rank for h in hits] == ([whole[h.chunk.id] for h in hits] if whole
                                      else list(range(1, len(hits) + 1)))
    return name


def _searcher(qa: QA, versions: Versions, indexes: dict[str, Index], stop: threading.Event,
              answers: bool, offset: int) -> None:
    """Search (or answer) in a loop until stop; failures are recorded, never raised."""
    i = offset
    while not stop.is_set():
        question = QUESTIONS[i % len(QUESTIONS)]
        i += 1
        try:
            if answers:
                answer = qa.answer(question)
                name = _check_hits(answer.hits, versions, indexes, qa)
                documents = indexes[name].documents
                assert all(c.doc_id in documents for c in answer.citations)
            else:
                name = _check_hits(qa.retriever.search(question), versions, indexes)
            versions.record(name)
        except Exception as exc:  # noqa: BLE001 - every failure is reported by the test
            with versions.lock:
                versions.errors.append(f"{question!r}: {type(exc).__name__}: {exc}")
            stop.set()


def test_searches_during_rebuild_and_swap_see_one_version(tmp_path: Path, settings: Settings,
                                                           embedder: Embedder) -> None:
    article, harbour = tmp_path / "article", tmp_path / "harbour"
    article.mkdir()
    (article / ARTICLE.name).write_text(ARTICLE.read_text(encoding="utf-8"), encoding="utf-8")
    harbour.mkdir()
    for name, text in HARBOUR.items():
        (harbour / name).write_text(text, encoding="utf-8")
    out = tmp_path / "store" / "index"
    corpora = {"article": article, "harbour": harbour}
    indexes = {name: build_index([folder], out, settings, embedder).index
               for name, folder in corpora.items()}
    versions = Versions({name: frozenset(c.id for c in index.chunks)
                         for name, index in indexes.items()})
    assert not versions.ids["article"] & versions.ids["harbour"]
    assert len(versions.ids["article"]) != len(versions.ids["harbour"])

    qa = QA(settings, indexes["harbour"], embedder, ScriptedGenerator(REPLY))
    stop = threading.Event()
    threads = [threading.Thread(target=_searcher, name=f"searcher-{n}", daemon=True,
                                args=(qa, versions, indexes, stop, n >= SEARCHERS, n))
               for n in range(SEARCHERS + ANSWERERS)]
    for thread in threads:
        thread.start()
    swaps, deadline = 0, time.monotonic() + SECONDS
    try:
        while time.monotonic() < deadline and not stop.is_set():
            name = "article" if swaps % 2 == 0 else "harbour"
            build_index([corpora[name]], out, settings, embedder)  # written beside, swapped in
            index = load_index(out)  # verified before use
            assert frozenset(c.id for c in index.chunks) == versions.ids[name]
            qa.swap_index(index)
            swaps += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    print(f"{swaps} swaps, searches per version {versions.seen}")
    assert versions.errors == []
    assert not any(t.is_alive() for t in threads)
    assert swaps >= 2, "the index was not rebuilt and swapped during the run"
    assert set(versions.seen) == {"article", "harbour"}, versions.seen
    assert sum(versions.seen.values()) >= len(threads)
