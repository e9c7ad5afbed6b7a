"""The Gradio chat app (UI only): `build_app(qa)` builds it; `python app.py` launches it."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import gradio as gr

from qa import ui
from qa.pipeline import QA, QuestionError
from qa.session import Models, UploadError, Uploads, index_uploads, installed_models
from qa.types import Answer

log = logging.getLogger("qa.app")
QUEUE_SIZE = 20
EMPTY_SOURCES = '<p class="qa-note">The sources of each answer appear here.</p>'


def _history(answers: list[Answer]) -> list[dict[str, str]]:
    """The conversation as plain messages for follow-up questions."""
    return [m for a in answers for m in ({"role": "user", "content": a.question},
                                         {"role": "assistant", "content": a.text})]


def _panel(answers: list[Answer], show_scores: bool, pending: str = "") -> str:
    """The Sources panel: the answer under way, then earlier turns, newest first."""
    turns = [ui.sources_html(a, i, show_scores) for i, a in enumerate(answers, 1)]
    return (pending + "".join(reversed(turns))) or EMPTY_SOURCES


def build_app(qa: QA, models: Models | None = None, note: str = "") -> gr.Blocks:
    """The chat app over qa, not launched; loads the model in the background if not given."""
    if models is None:
        models = Models(qa)
        models.load_in_background()
    documents = list(qa.index.documents.values())
    titles = [d.title or d.source for d in documents]
    title = ui.app_title(titles)
    limit = qa.settings.max_question_chars
    choices = installed_models() or [qa.settings.model]
    if qa.settings.model not in choices:
        choices.insert(0, qa.settings.model)

    def status(uploads: Uploads | None) -> str:
        index = uploads.index if uploads else qa.index
        sources = [d.source for d in index.documents.values()]
        extra = note if uploads is None else "Your uploaded documents (this browser session only)"
        return ui.status_html(qa.model_name, models.state, sources, len(index.chunks), extra)

    def tick(uploads: Uploads | None) -> tuple[str, gr.Timer]:
        return status(uploads), gr.Timer(active=not models.ready)

    def ask(question: str, chat: list[dict[str, Any]], top_k: float, show_scores: bool,
            model: str, answers: list[Answer], uploads: Uploads | None) -> Iterator[tuple]:
        chat, answers = list(chat or []), list(answers or [])
        try:
            question = qa.check_question(question)
        except QuestionError as exc:
            if (question or "").strip():
                chat.append({"role": "assistant", "content": ui.message_html(
                    f"Sorry, {exc}. Please shorten the question to at most {limit} characters "
                    "and ask again.")})
            yield question, chat, _panel(answers, show_scores), answers
            return
        turn = len(answers) + 1
        model = model or qa.settings.model
        step = models.state if model == qa.settings.model else "first use"
        waiting = "" if models.loaded(model) else ui.message_html(
            f"Loading the model {model} ({step}); the answer starts when it is ready…", "info")
        chat += [{"role": "user", "content": ui.question_html(question)},
                 {"role": "assistant", "content": waiting or "…"}]
        pending = ui.searching_html(question, "", [], turn)
        yield "", chat, _panel(answers, show_scores, pending), answers
        query, text = question, ""
        try:
            pipeline = models.pipeline(model, uploads.index if uploads else None)
            for event in pipeline.stream(question, _history(answers), int(top_k)):
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
                        answer.text, turn, answer.citations, answer.refused)}
                    pending = ""
                yield "", chat, _panel(answers, show_scores, pending), answers
        except Exception as exc:  # shown to the user, logged in full
            log.exception("answering %r failed", question)
            chat[-1] = {"role": "assistant",
                        "content": ui.message_html(f"Sorry, answering failed: {exc}")}
            yield question, chat, _panel(answers, show_scores), answers

    def clear() -> tuple:
        return "", [], EMPTY_SOURCES, []

    def upload(files: list[str] | None, uploads: Uploads | None,
               progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008 - Gradio's API
        def report(what: str, done: int, total: int) -> None:
            progress(done / total if total else 1.0, desc=what)

        if not files:
            return (ui.message_html("Choose one or more files first.", "info"), uploads,
                    status(uploads), gr.skip(), gr.skip(), gr.skip())
        try:
            progress(0, desc="Indexing your documents")
            new = index_uploads(files, qa.settings, qa.embedder, report)
        except UploadError as exc:
            return (ui.message_html(str(exc)), uploads, status(uploads), gr.skip(), gr.skip(),
                    gr.skip())
        if uploads is not None:
            uploads.close()
        names, count = ", ".join(new.names), len(new.index.chunks)
        done = ui.message_html(f"Indexed {names} ({count} passage{'s' if count != 1 else ''}). "
                               "Questions now use only your documents.", "info")
        return done, new, status(new), [], EMPTY_SOURCES, []

    def use_default(uploads: Uploads | None) -> tuple:
        if uploads is not None:
            uploads.close()
        return (ui.message_html("Using the default documents again.", "info"), None,
                status(None), [], EMPTY_SOURCES, [])

    def rerender(answers: list[Answer], show_scores: bool) -> str:
        return _panel(answers or [], show_scores)

    with gr.Blocks(title=title) as demo:
        gr.HTML(f"<style>{ui.CSS}</style>", js_on_load=ui.CLICK_JS, elem_id="qa-style")
        gr.HTML(f"<h1>{ui.esc(title)}</h1>")
        status_line = gr.HTML(status(None), label="Status", elem_id="qa-status")
        answers = gr.State([])
        uploads = gr.State(None, time_to_live=6 * 3600, delete_callback=_close_uploads)
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
                gr.Examples(ui.example_questions(titles), inputs=question, label="Examples")
                with gr.Accordion("Settings", open=False):
                    top_k = gr.Slider(1, 10, value=qa.settings.top_k, step=1,
                                      label="Passages to retrieve (top-k)")
                    show_scores = gr.Checkbox(False, label="Show retrieval scores")
                    model = gr.Dropdown(choices, value=qa.settings.model, label="Model")
                with gr.Accordion("Your own documents", open=False):
                    files = gr.File(label="Upload .txt, .md, .html or .pdf files",
                                    file_count="multiple",
                                    file_types=[".txt", ".md", ".html", ".htm", ".pdf"])
                    upload_note = gr.HTML("", label="Upload result")
                    default_button = gr.Button("Use the default documents")
            with gr.Column(scale=2):
                gr.HTML("<h3>Sources</h3>")
                sources = gr.HTML(EMPTY_SOURCES, label="Sources", elem_id="qa-sources")
        timer = gr.Timer(1.0, active=not models.ready)

        ask_inputs = [question, chatbot, top_k, show_scores, model, answers, uploads]
        ask_outputs = [question, chatbot, sources, answers]
        question.submit(ask, ask_inputs, ask_outputs, api_name="ask", concurrency_id="answer")
        ask_button.click(ask, ask_inputs, ask_outputs, api_name="ask_button",
                         concurrency_id="answer")
        clear_button.click(clear, None, [question, chatbot, sources, answers], api_name="clear",
                           queue=False)
        chatbot.clear(clear, None, [question, chatbot, sources, answers], api_name="clear_chat",
                      queue=False)
        show_scores.change(rerender, [answers, show_scores], sources, api_name="show_scores",
                           queue=False)
        timer.tick(tick, uploads, [status_line, timer], api_name="status", queue=False,
                   show_progress="hidden")
        upload_outputs = [upload_note, uploads, status_line, chatbot, sources, answers]
        files.upload(upload, [files, uploads], upload_outputs, api_name="upload")
        default_button.click(use_default, uploads, upload_outputs, api_name="use_default")
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


def _close_uploads(uploads: Uploads | None) -> None:
    if uploads is not None:
        uploads.close()


def main() -> None:
    """Serve the chat UI, the HTTP API and the widget as one app (qa.api.serve) with uvicorn on
    GRADIO_SERVER_NAME:GRADIO_SERVER_PORT (default 0.0.0.0:7860)."""
    from qa.api import serve
    from qa.config import SettingsError
    from qa.models import ModelUnavailable
    from qa.store import IndexLoadError

    try:
        port = int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
        # All interfaces by default, as a Space's container needs.
        host = os.environ.get("GRADIO_SERVER_NAME") or "0.0.0.0"  # nosec B104
        serve(host, port, build_ui=build_app)
    except (SettingsError, ModelUnavailable, IndexLoadError, ValueError) as exc:
        sys.exit(f"app.py: error: {exc}")


if __name__ == "__main__":
    main()
