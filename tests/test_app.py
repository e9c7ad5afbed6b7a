"""The Gradio app launched on a loopback port, driven through gradio_client."""

from __future__ import annotations

import html
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import pytest
from gradio_client import Client, handle_file

from qa.answer.examples import cached_examples
from qa.answer.pipeline import QA
from qa.config import Settings
from qa.errors import SettingsError, UploadError
from qa.serve.gradio_app import EMPTY_SOURCES, build_app
from qa.serve.state import Models, open_index
from qa.serve.uploads import check_uploads
from tests.browser import ARTIFACTS, chromium
from tests.fakes import ScriptedGenerator

MEMBERS = "Which countries were granted full membership of the SCO?"
CITED = "The SCO Secretary-General mentioned major changes"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(demo: gr.Blocks) -> str:
    """Serve demo on a free loopback port without blocking; return its URL."""
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                quiet=True)
    return f"http://127.0.0.1:{port}/"


Started = Callable[..., tuple[Client, ScriptedGenerator, QA]]


@pytest.fixture
def started(corpus_index, embedder) -> Iterator[Started]:
    """Start the app over the test index with a scripted generator; close it afterwards."""
    demos: list[gr.Blocks] = []

    def start(*replies: str) -> tuple[Client, ScriptedGenerator, QA]:
        generator = ScriptedGenerator(*replies)
        qa = QA(Settings.from_env(), corpus_index, embedder, generator)
        demo = build_app(qa)
        demos.append(demo)
        return Client(launch(demo), verbose=False), generator, qa

    yield start
    for demo in demos:
        demo.close()


def ask(client: Client, question: str, chat: list | None = None,
        top_k: int = 4, show_scores: bool = False) -> tuple[list[tuple], tuple]:
    """Every streamed output of one question, and the final one."""
    job = client.submit(question, chat or [], top_k, show_scores, "qwen2.5-coder-1.5b",
                        api_name="/ask")
    final = job.result(timeout=600)
    return job.outputs(), final


def text_of(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(p["text"] for p in content)


def test_ask_streams_the_answer_with_linked_escaped_citations(started: Started) -> None:
    reply = ("India and Pakistan were granted full membership [1]. "
             "See <img src=x onerror=alert(1)> [link](javascript:alert(1)).")
    client, _, _ = started(reply)
    outputs, (box, chat, sources) = ask(client, MEMBERS + " <script>x</script>")
    assert box == ""
    user, bot = chat
    assert text_of(user) == (
        "Which countries were granted full membership of the SCO? &#60;script&#62;x&#60;/script"
        "&#62;")
    answer = text_of(bot)
    assert answer == (
        'India and Pakistan were granted full membership <a class="qa-cite" href="#qa-t1-s1" '
        'title="SCO Secretary-General: Combatting Global Challenges Calls for an Effective '
        'Collective Approach">[1]</a>. See &#60;img src&#61;x onerror&#61;alert&#40;1&#41;&#62; '
        "&#91;link&#93;&#40;javascript&#58;alert&#40;1&#41;&#41;.")
    # Streamed: several growing partial answers before the final one.
    partial = [text_of(o[1][-1]) for o in outputs if len(o[1]) == 2]
    assert len({p for p in partial if p.startswith("India")}) > 5
    # Sources: the question escaped, the cited passage quoted with the cited sentence marked.
    assert sources.startswith('<div class="qa-turn" id="qa-t1"><p class="qa-query">Question: '
                              "<q>Which countries were granted full membership of the SCO? "
                              "&lt;script&gt;x&lt;/script&gt;</q></p>")
    assert '<div class="qa-source" id="qa-t1-s1">' in sources
    assert '<span class="qa-check qa-ok">✓ supported</span>' in sources
    assert "<mark>" + CITED in sources
    assert "India and Pakistan.</mark>" in sources
    assert "<script" not in sources and "<img" not in answer


def test_follow_up_uses_the_conversation_and_shows_the_rewritten_question(
        started: Started) -> None:
    rewritten = "When were India and Pakistan granted full SCO membership?"
    client, generator, _ = started("India and Pakistan [1].", rewritten,
                                   "Over the past two years [1].")
    _, (_, chat, _) = ask(client, MEMBERS)
    _, (_, chat, sources) = ask(client, "And when did that happen?", chat)
    assert len(chat) == 4
    assert sources.startswith('<div class="qa-turn" id="qa-t2"><p class="qa-query">Rewritten '
                              f"question: <q>{rewritten}</q></p>")
    assert 'id="qa-t1"' in sources  # the earlier turn stays, below the new one
    rewrite_call = generator.calls[1]
    assert "India and Pakistan." in rewrite_call[-1]["content"]
    assert "And when did that happen?" in rewrite_call[-1]["content"]


def test_refusal_looks_different_and_shows_the_closest_passages(started: Started) -> None:
    client, generator, _ = started("Paris [1].")
    _, (_, chat, sources) = ask(client, "What is the capital of France?")
    assert text_of(chat[-1]).startswith('<span class="qa-refusal">The documents do not say.')
    assert "Closest passages (none answers the question):" in sources
    assert sources.count('class="qa-source qa-closest"') == 3
    assert generator.calls == []


def test_too_long_question_gets_a_friendly_message(started: Started) -> None:
    client, generator, _ = started("unused")
    question = "x" * 2001
    _, (box, chat, sources) = ask(client, question)
    assert box == question  # kept, so it can be shortened
    assert text_of(chat[-1]) == (
        '<span class="qa-error">Sorry, the question is longer than 2000 characters. Please '
        "shorten the question to at most 2000 characters and ask again.</span>")
    assert sources == EMPTY_SOURCES and generator.calls == []


def test_scores_clear_and_status(started: Started) -> None:
    client, _, _ = started("India and Pakistan [1].")
    _, (_, _, sources) = ask(client, MEMBERS, show_scores=True)
    assert '<span class="qa-scores">score ' in sources
    assert "qa-scores" not in client.predict(False, api_name="/show_scores")
    assert client.predict(api_name="/clear") == ("", [], EMPTY_SOURCES)
    status, _, examples = client.predict(api_name="/status")
    assert status.startswith('<p class="qa-status">Model: <b>scripted</b> (ready) · Documents: '
                             "sco-un-special-event-2018.txt (1 file, ")
    assert examples["samples"] == [] and examples["visible"] is False  # QA_EXAMPLE_QUESTIONS=0


def test_page_is_titled_for_the_documents(corpus_index, embedder) -> None:
    qa = QA(Settings.from_env(), corpus_index, embedder, ScriptedGenerator("x"))
    demo = build_app(qa)
    title = "Ask about: SCO Secretary-General: Combatting Global Challenges Calls for an Effective…"
    assert demo.title == title
    config = demo.get_config_file()
    named = {d["api_name"] for d in config["dependencies"] if d.get("api_name")}
    assert {"ask", "clear", "status", "upload", "show_scores", "example"} <= named


def test_examples_are_questions_the_model_wrote_and_the_app_answered(
        corpus_index, embedder, tmp_path) -> None:
    written = "Which countries were granted full membership of the SCO?"
    generator = ScriptedGenerator(written, "India and Pakistan were granted full membership [1].",
                                  "Not a question.")
    settings = Settings.from_env(example_questions=3, cache_dir=tmp_path)
    qa = QA(settings, corpus_index, embedder, generator)
    models = Models(qa)
    demo = build_app(qa, models)
    assert models.examples is None  # nothing shown before the model has written them
    models.load_in_background()
    try:
        client = Client(launch(demo), verbose=False)
        deadline = time.monotonic() + 60
        while models.examples is None and time.monotonic() < deadline:
            time.sleep(0.1)
        _, _, examples = client.predict(api_name="/status")
        assert client.predict(0, api_name="/example") == written  # the sample chosen fills in
    finally:
        demo.close()
    assert models.examples == [written]  # the other passages' replies were no questions
    assert examples["samples"] == [[written]] and examples["__type__"] == "update"
    # six passages tried: one question written and answered, five replies that were none
    assert len(generator.calls) == 7
    [kept] = (tmp_path / "examples").iterdir()
    assert json.loads(kept.read_text()) == [written]
    again = QA(settings, corpus_index, embedder, ScriptedGenerator("unused"))
    assert cached_examples(again, tmp_path / "examples") == [written]  # no generation
    assert again.generator.calls == []  # type: ignore[attr-defined]


def test_uploaded_documents_are_used_in_that_session_only(started: Started, tmp_path,
                                                          monkeypatch) -> None:
    notes = tmp_path / "zoo.txt"
    notes.write_text("Zoo notes\n\nThe zebra named Oswald lives in the Lisbon zoo since 2019. "
                     "He eats hay and carrots.\n", encoding="utf-8")
    monkeypatch.setenv("QA_MAX_UPLOAD_FILES", "1")
    client, _, _ = started("Oswald lives in the Lisbon zoo [1].", "India and Pakistan [1].")
    note, *_ = client.predict([handle_file(notes), handle_file(notes)], api_name="/upload")
    assert "too many files: 2 uploaded, at most 1 allowed" in html.unescape(note)
    note, status, chat, sources = client.predict([handle_file(notes)], api_name="/upload")
    assert "Indexed zoo.txt (1 passage)" in html.unescape(note) and "zoo.txt" in status
    assert chat == [] and sources == EMPTY_SOURCES
    _, (_, chat, sources) = ask(client, "Where does the zebra Oswald live?")
    assert "<mark>The zebra named Oswald lives in the Lisbon zoo since 2019.</mark>" in sources
    # Another visitor still gets the default documents.
    other = Client(client.src, verbose=False)
    _, (_, _, sources) = ask(other, MEMBERS)
    assert "sco-un-special-event-2018.txt" in sources


@pytest.mark.model
def test_real_default_model_answers_a_dev_question_with_a_citation(corpus_index) -> None:
    """The real default model (loaded in the background, as in `python app.py`)."""
    settings = Settings.from_env()
    qa = QA.from_settings(settings, corpus_index.path)
    models = Models(qa)
    demo = build_app(qa, models)
    models.load_in_background()
    try:
        client = Client(launch(demo), verbose=False)
        _, (_, chat, sources) = ask(client, MEMBERS)
    finally:
        demo.close()
    answer = text_of(chat[-1])
    assert "India and Pakistan" in answer
    assert 'class="qa-cite' in answer and 'href="#qa-t1-s' in answer
    assert '<div class="qa-source" id="qa-t1-s' in sources and "<mark>" in sources




@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium for the page tests."""
    with chromium("1400,1000") as driver:
        yield driver


def test_browser_streams_answer_and_citation_chip_highlights_its_passage(
        corpus_index, embedder, browser) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    reply = ("India and Pakistan were granted full membership [1]. "
             "See <img src=x onerror=alert(1)> [link](javascript:alert(1)).")
    qa = QA(Settings.from_env(), corpus_index, embedder, ScriptedGenerator(reply))
    demo = build_app(qa)
    try:
        browser.get(launch(demo))
        # The chat re-renders as tokens stream: a found element can go stale; look again.
        wait = WebDriverWait(browser, 60, ignored_exceptions=(StaleElementReferenceException,))
        box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#qa-question textarea")))
        wait.until(ec.text_to_be_present_in_element((By.ID, "qa-status"), "(ready)"))
        assert "Ask about: SCO Secretary-General" in browser.title
        box.send_keys(MEMBERS)
        box.send_keys(Keys.ENTER)
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#qa-chat a.qa-cite")))
        wait.until(lambda d: "javascript:alert(1))." in d.find_elements(
            By.CSS_SELECTOR, "#qa-chat .message.bot")[-1].text)
        # The final render: the Sources panel marks the cited sentence in the same update that
        # gives the chat its final answer. Earlier renders are replaced, chips and all.
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#qa-sources #qa-t1-s1 mark")))
        bot = browser.find_elements(By.CSS_SELECTOR, "#qa-chat .message.bot")[-1]
        # The hostile text shows as text: no image, no link other than the chip.
        assert "See <img src=x onerror=alert(1)> [link](javascript:alert(1))." in bot.text
        assert bot.find_elements(By.TAG_NAME, "img") == []
        assert [a.get_attribute("class") for a in bot.find_elements(By.TAG_NAME, "a")] == [
            "qa-cite"]
        handles = browser.window_handles

        def click_chip(driver: Any) -> bool:
            """Find the last answer's chip and click it, in one step (a re-render between a
            look-up and a click makes the chip stale: the wait then tries again)."""
            driver.find_elements(By.CSS_SELECTOR, "#qa-chat .message.bot")[-1].find_element(
                By.CSS_SELECTOR, "a.qa-cite").click()
            return True

        wait.until(click_chip)
        # One look-up: the highlighted source and its mark together.
        mark = wait.until(ec.visibility_of_element_located(
            (By.CSS_SELECTOR, "#qa-t1-s1.qa-focus mark")))
        assert browser.window_handles == handles  # no new tab
        assert mark.is_displayed()
        assert " ".join(mark.text.split()).endswith("granting of full membership to India and "
                                                    "Pakistan.")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "gradio-citation.png"))
    finally:
        demo.close()


def test_start_up_rebuilds_a_missing_or_corrupt_index(tmp_path, corpus_copy, embedder) -> None:
    settings = Settings.from_env(corpus_dir=corpus_copy, index_dir=tmp_path / "index")
    index, note = open_index(settings, embedder)
    assert note == (f"Rebuilt the index from corpus/ because: no index at {tmp_path / 'index'} "
                    "(run: qa index build)")
    assert len(index.chunks) > 0
    assert open_index(settings, embedder)[1] == ""  # fresh: loaded as is
    with open(tmp_path / "index" / "chunks.jsonl", "a", encoding="utf-8") as fh:
        fh.write("\n")
    _, note = open_index(settings, embedder)
    assert "chunks.jsonl has the wrong size" in note
    (corpus_copy / "extra.md").write_text("# Extra\n\nA new document.\n", encoding="utf-8")
    index, note = open_index(settings, embedder)
    assert "corpus changed" in note and len(index.documents) == 2


def test_upload_limits_come_from_the_settings(tmp_path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("x" * 3000, encoding="utf-8")
    env = Settings.from_env({"QA_MAX_UPLOAD_MB": "0.001", "QA_MAX_UPLOAD_FILES": "2"})
    with pytest.raises(UploadError, match=r"big.txt is 0.0 MB; the limit is 0.001 MB per file"):
        check_uploads([big], env)
    with pytest.raises(UploadError, match="unsupported file type"):
        check_uploads([tmp_path / "x.exe"], env)
    with pytest.raises(UploadError, match="at most 2 allowed"):
        check_uploads([big] * 3, env)
    with pytest.raises(SettingsError, match="max_upload_files must be positive"):
        Settings.from_env({"QA_MAX_UPLOAD_FILES": "0"})
    check_uploads([big], Settings.from_env({}))  # defaults: 10 MB, 5 files
