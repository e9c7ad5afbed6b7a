"""Safe HTML for the chat app: answers with [n] chips, the Sources panel and titles.

Every piece of model output, question and document text is HTML-escaped here; chat text is
also made inert for the chat's Markdown renderer (no links, emphasis or maths from the model).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

from qa.answer.citations import MARKER
from qa.types import Answer, Citation, Hit

# HTML specials and characters the chat's Markdown renderer would treat as syntax, written as
# numeric character references (which Markdown keeps as literal text).
_CHAT_SPECIAL = re.compile(r"[&<>\"'\\`*_{}\[\]()#+\-!|~$:=]")
_MAX_TITLE = 80


def esc(text: str) -> str:
    """Text escaped for HTML (quotes included)."""
    return html.escape(text, quote=True)


def chat_escape(text: str) -> str:
    """Text escaped for HTML and inert in Markdown."""
    return _CHAT_SPECIAL.sub(lambda m: f"&#{ord(m.group(0))};", text)


def anchor(turn: int, n: int) -> str:
    """The id of source [n] of a turn in the Sources panel."""
    return f"qa-t{turn}-s{n}"


def _chip(turn: int, n: int, citation: Citation | None) -> str:
    cls = "qa-cite" if citation is None or citation.supported else "qa-cite qa-unsupported"
    title = f' title="{esc(citation.title or citation.source)}"' if citation else ""
    return f'<a class="{cls}" href="#{anchor(turn, n)}"{title}>[{n}]</a>'


def answer_html(text: str, turn: int, citations: Sequence[Citation] = (),
                refused: bool = False, short: str = "") -> str:
    """A (partial or final) answer for the chat, each [n] a chip linking to its source; the
    short answer, when there is one, in bold on a line above it."""
    if refused:
        return (f'<span class="qa-refusal">{chat_escape(text)}</span> '
                '<span class="qa-note">(closest passages under Sources)</span>')
    by_n = {c.n: c for c in citations}
    out: list[str] = [f'<b class="qa-short">{chat_escape(short)}</b><br>'] if short else []
    pos = 0
    for match in MARKER.finditer(text):
        out.append(chat_escape(text[pos:match.start()]))
        lead = match.group(0)[: len(match.group(0)) - len(match.group(0).lstrip())]
        numbers = [int(n) for n in match.group(1).split(",")]
        out.append(chat_escape(lead) + "".join(_chip(turn, n, by_n.get(n)) for n in numbers))
        pos = match.end()
    out.append(chat_escape(text[pos:]))
    return "".join(out)


def question_html(question: str) -> str:
    """The user's question for the chat."""
    return chat_escape(question)


def _marked(passage: str, start: int, snippet: str) -> str:
    """The passage with the cited snippet wrapped in <mark> (escaped around it)."""
    if passage[start:start + len(snippet)] != snippet:
        start = passage.find(snippet)
    if start < 0 or not snippet:
        return f"<mark>{esc(snippet)}</mark>" if snippet else esc(passage)
    end = start + len(snippet)
    return f"{esc(passage[:start])}<mark>{esc(snippet)}</mark>{esc(passage[end:])}"


def _scores(hit: Hit | None, show: bool) -> str:
    if not show or hit is None:
        return ""
    return (f' <span class="qa-scores">score {hit.score:.4f} · similarity '
            f"{hit.dense_score:.2f} · BM25 {hit.bm25_score:.2f}</span>")


def _query(question: str, query: str) -> str:
    if query and query.strip() != question.strip():
        return f'<p class="qa-query">Rewritten question: <q>{esc(query)}</q></p>'
    return f'<p class="qa-query">Question: <q>{esc(question)}</q></p>'


def _page(c: Citation, link: str | None) -> str:
    """", page N" of a citation into a PDF; a link to that page (a new tab) when link is the
    URL of the PDF itself."""
    if c.page is None:
        return ""
    if link is None:
        return f", page {int(c.page)}"
    return (f', <a class="qa-page" href="{esc(link)}#page={int(c.page)}" target="_blank" '
            f'rel="noopener">page {int(c.page)}</a>')


def _citation(c: Citation, hit: Hit | None, turn: int, show_scores: bool,
              link: str | None = None) -> str:
    check = ('<span class="qa-check qa-ok">✓ supported</span>' if c.supported else
             '<span class="qa-check qa-bad">✗ not supported by this passage</span>')
    if hit is not None:
        passage = _marked(hit.chunk.text, c.start - hit.chunk.start, c.snippet)
    else:
        passage = _marked("", 0, c.snippet)
    return (f'<div class="qa-source" id="{anchor(turn, c.n)}"><div class="qa-head">'
            f'<span class="qa-chip">[{c.n}]</span> <b>{esc(c.title or c.source)}</b> '
            f'<span class="qa-meta">{esc(c.source)}{_page(c, link)}, characters '
            f"{c.start}–{c.end}</span> "
            f"{check}{_scores(hit, show_scores)}</div>"
            f'<blockquote class="qa-passage">{passage}</blockquote></div>')


def _passage(hit: Hit, turn: int, show_scores: bool) -> str:
    c = hit.chunk
    return (f'<div class="qa-source qa-closest" id="{anchor(turn, hit.rank)}"><div class="qa-head">'
            f'<span class="qa-chip">[{hit.rank}]</span> <b>{esc(hit.title or hit.source)}</b> '
            f'<span class="qa-meta">{esc(hit.source)}, characters {c.start}–{c.end}</span>'
            f'{_scores(hit, show_scores)}</div>'
            f'<blockquote class="qa-passage">{esc(c.text)}</blockquote></div>')


def sources_html(answer: Answer, turn: int, show_scores: bool = False,
                 links: Mapping[str, str] | None = None) -> str:
    """One turn of the Sources panel: the query, then cited passages or the closest ones;
    links: the URL of a PDF by its source name, for links to a citation's page."""
    head = f'<div class="qa-turn" id="qa-t{turn}">{_query(answer.question, answer.query)}'
    if answer.refused or not answer.citations:
        closest = "".join(_passage(h, turn, show_scores) for h in answer.hits[:3])
        note = ("Closest passages (none answers the question):" if closest
                else "No passage matched the question.")
        return (f'{head}<p class="qa-refusal">{esc(answer.text)} {note}</p>{closest}</div>')
    hits = {h.chunk.id: h for h in answer.hits}
    cited = "".join(_citation(c, hits.get(c.chunk_id), turn, show_scores,
                              (links or {}).get(c.source)) for c in answer.citations)
    return f"{head}{cited}</div>"


def searching_html(question: str, query: str, hits: Sequence[Hit], turn: int,
                   show_scores: bool = False) -> str:
    """The Sources panel while the answer streams: the query and the retrieved passages."""
    found = "".join(_passage(h, turn, show_scores) for h in hits)
    label = f"Retrieved {len(hits)} passages; writing the answer…" if hits else "Searching…"
    return (f'<div class="qa-turn" id="qa-t{turn}">{_query(question, query)}'
            f'<p class="qa-pending">{label}</p>{found}</div>')


def _short(title: str) -> str:
    title = " ".join(title.split())
    if len(title) <= _MAX_TITLE:
        return title
    cut = title[: _MAX_TITLE - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:-") + "…"


def app_title(titles: Sequence[str]) -> str:
    """The page heading for the loaded documents."""
    if len(titles) == 1:
        return f"Ask about: {_short(titles[0])}"
    return f"Ask about {len(titles)} documents"


def status_html(model: str, model_state: str, sources: Sequence[str], chunks: int,
                note: str = "") -> str:
    """The status line: which model (and whether it is ready) and which documents."""
    shown = ", ".join(esc(s) for s in sources[:3])
    if len(sources) > 3:
        shown += f" and {len(sources) - 3} more"
    extra = f' <span class="qa-note">{esc(note)}</span>' if note else ""
    return (f'<p class="qa-status">Model: <b>{esc(model)}</b> ({esc(model_state)}) · '
            f"Documents: {shown} ({len(sources)} file{'s' if len(sources) != 1 else ''}, "
            f"{chunks} passages){extra}</p>")


def message_html(text: str, kind: str = "error") -> str:
    """A short notice (error or info) for the chat or the Sources panel."""
    return f'<span class="qa-{esc(kind)}">{chat_escape(text)}</span>'


CSS = """
.qa-cite{display:inline-block;margin:0 1px;padding:0 5px;border-radius:9px;font-size:.8em;
 background:#dbeafe;color:#1e3a8a!important;text-decoration:none!important;font-weight:600}
.qa-cite.qa-unsupported{background:#fee2e2;color:#7f1d1d!important}
.qa-refusal{color:#92400e;font-style:italic}
.qa-refusal::before{content:"⚠ "}
.qa-note,.qa-meta,.qa-scores,.qa-pending{color:#6b7280;font-size:.85em}
.qa-turn{margin-bottom:1em;padding-bottom:.5em;border-bottom:1px solid #e5e7eb}
.qa-source{margin:.5em 0;padding:.4em .6em;border-left:3px solid #93c5fd;border-radius:4px}
.qa-source.qa-closest{border-left-color:#d1d5db}
.qa-source:target,.qa-source.qa-focus{background:#fef9c3;outline:2px solid #facc15}
.qa-chip{font-weight:700;color:#1e3a8a}
.qa-passage{white-space:pre-wrap;margin:.3em 0 0 0;font-size:.9em}
.qa-passage mark{background:#fde047;color:inherit;padding:0 1px}
.qa-check.qa-ok{color:#166534}.qa-check.qa-bad{color:#991b1b}
.qa-error{color:#991b1b}.qa-info{color:#1e40af}
"""

# Clicking a chip scrolls its source into view and highlights it (the chat opens links in new
# tabs otherwise); installed once per page.
CLICK_JS = """
if (!window.__qaCites) {
  window.__qaCites = true;
  document.addEventListener('click', (event) => {
    const link = event.target.closest && event.target.closest('a.qa-cite');
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    const target = document.getElementById(link.getAttribute('href').slice(1));
    if (!target) return;
    document.querySelectorAll('.qa-focus').forEach((el) => el.classList.remove('qa-focus'));
    target.classList.add('qa-focus');
    target.scrollIntoView({block: 'center'});
  }, true);
}
"""
