"""The Gradio chat app: `build_app(qa)` builds it (not launched); `ChatHandlers` holds its
callbacks. `qa.serve.api.create_api` mounts it with the API and the widget."""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator
from typing import Any, cast

import gradio as gr

from qa.answer.pipeline import QA
from qa.errors import QAError, QuestionError
from qa.serve import html as ui
from qa.serve.state import Models, installed_models
from qa.serve.uploaded_pdfs import UploadedPdfs, links
from qa.serve.uploads import Uploads, UploadStore
from qa.types import Answer, Message

log = logging.getLogger("qa.serve")
QUEUE_SIZE = 20
EMPTY_SOURCES = '<p class="qa-note">The sources of each answer appear here.</p>'
Chat = list[dict[str, Any]]


def _history(answers: list[Answer]) -> list[Message]:
    """The conversation as plain messages for follow-up questions."""
    return [m for a in answers for m in ({"role": "user", "content": a.question},
                                         {"role": "assistant", "content": a.text})]


def _panel(answers: list[Answer], show_scores: bool, pending: str = "",
           uploads: Uploads | None = None) -> str:
    """The Sources panel: the answer under way, then earlier turns, newest first; citations
    into the uploads' PDFs link their page."""
    pdfs = links(uploads)
    turns = [ui.sources_html(a, i, show_scores, pdfs) for i, a in enumerate(answers, 1)]
    return (pending + "".join(reversed(turns))) or EMPTY_SOURCES


class ChatHandlers:
    """The app's callbacks over one pipeline and its models; per-visitor state (the answers so
    far, the uploads) comes in and goes out through Gradio's State. Uploaded PDFs are linked
    from the Sources panel only when `pdfs` (the server's route to them) is given."""

    def __init__(self, qa: QA, models: Models, store: UploadStore, note: str = "",
                 pdfs: UploadedPdfs | None = None) -> None:
        self.qa, self.models, self.store, self.note, self.pdfs = qa, models, store, note, pdfs

    def _panel(self, answers: list[Answer], show_scores: bool, uploads: Uploads | None,
               pending: str = "") -> str:
        return _panel(answers, show_scores, pending, uploads if self.pdfs else None)

    def status(self, uploads: Uploads | None) -> str:
        """The status line for the visitor's documents."""
        if uploads is not None and uploads.removed:
            uploads = None
        index = uploads.index if uploads else self.qa.index
        sources = [d.source for d in index.documents.values()]
        extra = (self.note if uploads is None
                 else "Your uploaded documents (this browser session only)")
        return ui.status_html(self.qa.model_name, self.models.state, sources, len(index.chunks),
                              extra)

    def tick(self, uploads: Uploads | None) -> tuple[str, gr.Timer, gr.Dataset]:
        """The status line, the timer (on until the model and the examples are ready) and the
        example questions."""
        pending = not self.models.ready or self.models.examples is None
        return self.status(uploads), gr.Timer(active=pending), self.examples(uploads)

    def examples(self, uploads: Uploads | None) -> gr.Dataset:
        """The example questions made from the default documents (none for uploads)."""
        shown = [] if uploads is not None else self.models.examples or []
        return gr.Dataset(samples=[[q] for q in shown], visible=bool(shown))

    def ask(self, question: str, chat: Chat, top_k: float, show_scores: bool, model: str,
            answers: list[Answer], uploads: Uploads | None) -> Iterator[tuple[Any, ...]]:
        """Stream one answer into the chat and the Sources panel."""
        qa, limit = self.qa, self.qa.settings.max_question_chars
        chat, answers = list(chat or []), list(answers or [])
        try:
            question = qa.check_question(question)
        except QuestionError as exc:
            if (question or "").strip():
                chat.append({"role": "assistant", "content": ui.message_html(
                    f"Sorry, {exc}. Please shorten the question to at most {limit} characters "
                    "and ask again.")})
            yield question, chat, self._panel(answers, show_scores, uploads), answers
            return
        if uploads is not None and uploads.removed:
            chat.append({"role": "assistant", "content": ui.message_html(
                f"Sorry, your uploaded documents are gone: {uploads.removed}. Upload them "
                "again, or use the default documents.")})
            yield question, chat, _panel(answers, show_scores), answers
            return
        if uploads is not None:
            self.store.touch(uploads)
        turn = len(answers) + 1
        model = model or qa.settings.model
        step = self.models.state if model == qa.settings.model else "first use"
        waiting = "" if self.models.loaded(model) else ui.message_html(
            f"Loading the model {model} ({step}); the answer starts when it is ready…", "info")
        chat += [{"role": "user", "content": ui.question_html(question)},
                 {"role": "assistant", "content": waiting or "…"}]
        pending = ui.searching_html(question, "", [], turn)
        yield "", chat, self._panel(answers, show_scores, uploads, pending), answers
        query, text = question, ""
        try:
            pipeline = self.models.pipeline(model, uploads.index if uploads else None)
            # Closed explicitly when Gradio closes this generator (the tab went away).
            with contextlib.closing(pipeline.stream(question, _history(answers),
                                                    int(top_k))) as events:
                for event in events:
                    if event.kind == "query":
                        query = event.text
                    elif event.kind == "hits":
                        pending = ui.searching_html(question, query, event.hits, turn, show_scores)
                    elif event.kind == "token":
                        text += event.text
                        chat[-1] = {"role": "assistant", "content": ui.answer_html(text, turn)}
                    elif event.answer is not None:
                        answer = event.answer
                        answers.append(answer)
                        chat[-1] = {"role": "assistant", "content": ui.answer_html(
                            answer.text, turn, answer.citations, answer.refused, answer.short)}
                        pending = ""
                    yield "", chat, self._panel(answers, show_scores, uploads, pending), answers
        except QAError as exc:  # meant for the user
            chat[-1] = {"role": "assistant",
                        "content": ui.message_html(f"Sorry, answering failed: {exc}")}
            yield question, chat, self._panel(answers, show_scores, uploads), answers
        except Exception:  # a bug: logged in full, no internals shown
            log.exception("answering %r failed", question)
            chat[-1] = {"role": "assistant", "content": ui.message_html(
                "Sorry, answering failed (an internal error; the server log has the details).")}
            yield question, chat, self._panel(answers, show_scores, uploads), answers

    def clear(self) -> tuple[Any, ...]:
        return "", [], EMPTY_SOURCES, []

    def upload(self, files: list[str] | None, uploads: Uploads | None,
               progress: gr.Progress = gr.Progress()  # noqa: B008 - Gradio's API
               ) -> tuple[Any, ...]:
        """Index the visitor's files; their questions then use only those."""
        def report(what: str, done: int, total: int) -> None:
            progress(done / total if total else 1.0, desc=what)

        if not files:
            return (ui.message_html("Choose one or more files first.", "info"), uploads,
                    self.status(uploads), gr.skip(), gr.skip(), gr.skip())
        try:
            progress(0, desc="Indexing your documents")
            new = self.store.index(files, report)
        except QAError as exc:  # a limit broken, no usable text, a full disk
            return (ui.message_html(str(exc)), uploads, self.status(uploads), gr.skip(),
                    gr.skip(), gr.skip())
        if uploads is not None:
            self.store.release(uploads)
        if self.pdfs is not None:
            self.pdfs.add(new)
        names, count = ", ".join(new.names), len(new.index.chunks)
        left_out = "".join(f" Not indexed: {line}." for line in new.skipped)
        done = ui.message_html(f"Indexed {names} ({count} passage{'s' if count != 1 else ''}). "
                               f"Questions now use only your documents.{left_out}", "info")
        return done, new, self.status(new), [], EMPTY_SOURCES, []

    def use_default(self, uploads: Uploads | None) -> tuple[Any, ...]:
        if uploads is not None:
            self.store.release(uploads)
        return (ui.message_html("Using the default documents again.", "info"), None,
                self.status(None), [], EMPTY_SOURCES, [])

    def rerender(self, answers: list[Answer], show_scores: bool,
                 uploads: Uploads | None) -> str:
        return self._panel(answers or [], show_scores, uploads)


def build_app(qa: QA, models: Models | None = None, note: str = "",
              store: UploadStore | None = None, pdfs: UploadedPdfs | None = None) -> gr.Blocks:
    """The chat app over qa, not launched; loads the model in the background if not given,
    and keeps visitors' uploads in store (default: its own, closed with the app). pdfs: where
    the server keeps uploaded PDFs for its route to them (none: no page links)."""
    if models is None:
        models = Models(qa)
        models.load_in_background()
    own = store is None
    store = store or UploadStore(qa.settings, qa.embedder)
    handlers = ChatHandlers(qa, models, store, note, pdfs)
    titles = [d.title or d.source for d in qa.index.documents.values()]
    title = ui.app_title(titles)
    limit = qa.settings.max_question_chars
    remote = qa.settings.backend == "openai"  # the server's model: no local one to pick
    choices = ([] if remote else installed_models()) or [qa.settings.model]
    if qa.settings.model not in choices:
        choices.insert(0, qa.settings.model)

    with gr.Blocks(title=title) as demo:
        gr.HTML(f"<style>{ui.CSS}</style>", js_on_load=ui.CLICK_JS, elem_id="qa-style")
        gr.HTML(f"<h1>{ui.esc(title)}</h1>")
        status_line = gr.HTML(handlers.status(None), label="Status", elem_id="qa-status")
        answers = gr.State([])
        uploads = gr.State(None, time_to_live=store.idle_seconds,
                           delete_callback=store.release)
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Chat", height=460, latex_delimiters=[],
                                     feedback_options=None, buttons=["copy", "copy_all"],
                                     elem_id="qa-chat")
                question = gr.Textbox(label="Your question", lines=1, max_lines=6,
                                      placeholder=f"Ask about the documents (up to {limit} "
                                                  "characters)", elem_id="qa-question")
                with gr.Row():
                    ask_button = gr.Button("Ask", variant="primary", elem_id="qa-ask")
                    clear_button = gr.Button("Clear", elem_id="qa-clear")
                shown = models.examples or []
                examples = gr.Dataset(components=[question], samples=[[q] for q in shown],
                                      label="Examples", visible=bool(shown),
                                      elem_id="qa-examples")
                with gr.Accordion("Settings", open=False):
                    top_k = gr.Slider(1, 10, value=qa.settings.top_k, step=1,
                                      label="Passages to retrieve (top-k)")
                    show_scores = gr.Checkbox(False, label="Show retrieval scores")
                    model = gr.Dropdown(choices, value=qa.settings.model, label="Model",
                                        visible=not remote)
                with gr.Accordion("Your own documents", open=False):
                    files = gr.File(label="Upload .txt, .md, .html, .pdf or .docx files",
                                    file_count="multiple",
                                    file_types=[".txt", ".md", ".html", ".htm", ".pdf", ".docx"])
                    upload_note = gr.HTML("", label="Upload result")
                    default_button = gr.Button("Use the default documents")
            with gr.Column(scale=2):
                gr.HTML("<h3>Sources</h3>")
                sources = gr.HTML(EMPTY_SOURCES, label="Sources", elem_id="qa-sources")
        timer = gr.Timer(1.0, active=not models.ready or models.examples is None)

        ask_inputs = [question, chatbot, top_k, show_scores, model, answers, uploads]
        ask_outputs = [question, chatbot, sources, answers]
        question.submit(handlers.ask, ask_inputs, ask_outputs, api_name="ask",
                        concurrency_id="answer")
        ask_button.click(handlers.ask, ask_inputs, ask_outputs, api_name="ask_button",
                         concurrency_id="answer")
        cleared = [question, chatbot, sources, answers]
        clear_button.click(handlers.clear, None, cleared, api_name="clear", queue=False)
        chatbot.clear(handlers.clear, None, cleared, api_name="clear_chat", queue=False)
        show_scores.change(handlers.rerender, [answers, show_scores, uploads], sources,
                           api_name="show_scores", queue=False)
        timer.tick(handlers.tick, uploads, [status_line, timer, examples], api_name="status",
                   queue=False, show_progress="hidden")
        examples.click(lambda sample: sample[0], examples, question, api_name="example",
                       queue=False)
        upload_outputs = [upload_note, uploads, status_line, chatbot, sources, answers]
        files.upload(handlers.upload, [files, uploads], upload_outputs, api_name="upload").then(
            handlers.examples, uploads, examples, queue=False)
        default_button.click(handlers.use_default, uploads, upload_outputs,
                             api_name="use_default").then(
            handlers.examples, uploads, examples, queue=False)
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    if own:
        weakref.finalize(demo, store.close)
    return cast(gr.Blocks, demo)
