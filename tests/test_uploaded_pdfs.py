"""The Sources panel links the cited page of an uploaded PDF, served inline by a real server on
loopback to that session only."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from gradio_client import Client, handle_file

from qa.answer.pipeline import QA
from qa.serve.api import create_api
from tests.browser import ARTIFACTS, chromium
from tests.fakes import ScriptedGenerator
from tests.test_api import OPEN, running
from tests.test_app import ask
from tests.test_corpus import make_pdf
from tests.test_pages import PAGES

CRANE = "The crane at pier seven lifts forty tonnes [1]."
_LINK = re.compile(r'<a class="qa-page" href="([^"]+)" target="_blank" rel="noopener">'
                   r"page (\d+)</a>")


@pytest.fixture
def app_url(corpus_index, embedder) -> Iterator[str]:
    """The whole app (API, uploaded PDFs, Gradio) on loopback, answering with CRANE."""
    qa = QA(OPEN, corpus_index, embedder, ScriptedGenerator(CRANE))
    with running(create_api(qa, settings=OPEN)) as url:
        yield url


def _upload(url: str, *paths: Path) -> Client:
    """A new browser session that has uploaded paths."""
    client = Client(f"{url}/", verbose=False)
    note, *_ = client.predict([handle_file(p) for p in paths], api_name="/upload")
    assert "Indexed" in html.unescape(note)
    return client


def _links(sources: str) -> list[tuple[str, int]]:
    return [(html.unescape(href), int(page)) for href, page in _LINK.findall(sources)]


def test_a_cited_page_of_an_uploaded_pdf_is_linked_and_served_inline(app_url, tmp_path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(make_pdf(PAGES, "Harbour report"))
    session = _upload(app_url, report)
    _, (_, _, sources) = ask(session, "How much can the crane at pier seven lift?")
    [(href, page)] = _links(sources)
    assert page == 2 and re.fullmatch(r"uploaded/[\w-]{22}/[\w-]{22}#page=2", href)
    with httpx.Client(timeout=30) as http:
        got = http.get(urljoin(f"{app_url}/", href))
        assert got.status_code == 200 and got.content == report.read_bytes()
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["content-disposition"] == 'inline; filename="report.pdf"'
        assert got.headers["content-security-policy"] == "sandbox"
        assert got.headers["x-content-type-options"] == "nosniff"
        _, key, file_id = href.split("#")[0].split("/")

        # Another session's own PDF is not reachable with this session's key, nor this one
        # with the other's; a made-up id is no file either.
        other = tmp_path / "other" / "memo.pdf"
        other.parent.mkdir()
        other.write_bytes(make_pdf(PAGES[1:]))  # the crane on its page 1
        _, (_, _, theirs) = ask(_upload(app_url, other), "How much can the crane lift?")
        [(their_href, their_page)] = _links(theirs)
        assert their_page == 1
        _, their_key, their_id = their_href.split("#")[0].split("/")
        assert http.get(f"{app_url}/uploaded/{their_key}/{their_id}").content == (
            other.read_bytes())
        for path in (f"{key}/{their_id}", f"{their_key}/{file_id}", f"{key}/{'A' * 22}",
                     f"{'A' * 22}/{file_id}", f"{key}/..%2Freport.pdf", f"{key}/report.pdf"):
            assert http.get(f"{app_url}/uploaded/{path}").status_code == 404, path

        # Back to the default documents: the session's files are gone, and so is the link.
        session.predict(api_name="/use_default")
        assert http.get(urljoin(f"{app_url}/", href)).status_code == 404


def test_a_citation_into_an_uploaded_text_file_has_no_link(app_url, tmp_path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Harbour notes\n\n" + " ".join(PAGES), encoding="utf-8")
    _, (_, _, sources) = ask(_upload(app_url, notes),
                             "How much can the crane at pier seven lift?")
    assert "notes.txt, characters" in sources and "<mark>" in sources
    assert _links(sources) == [] and "uploaded/" not in sources


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium."""
    with chromium("1400,1000") as driver:
        yield driver


def test_the_browser_opens_the_cited_page_in_a_new_tab(app_url, tmp_path, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    report = tmp_path / "report.pdf"
    report.write_bytes(make_pdf(PAGES, "Harbour report"))
    browser.get(f"{app_url}/")
    wait = WebDriverWait(browser, 60)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#qa-question textarea")))
    browser.find_element(By.XPATH, "//button[contains(., 'Your own documents')]").click()
    upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
    upload.send_keys(str(report))
    wait.until(ec.text_to_be_present_in_element((By.ID, "qa-status"), "report.pdf"))
    box = browser.find_element(By.CSS_SELECTOR, "#qa-question textarea")
    box.send_keys("How much can the crane at pier seven lift?\n")
    link = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#qa-sources a.qa-page")))
    assert link.text == "page 2" and link.get_attribute("href").endswith("#page=2")
    opened = _new_tab(browser, wait, link)
    assert opened.endswith("#page=2") and "/uploaded/" in opened
    # Shown by the browser's PDF viewer (not downloaded), with no handle on the app's page.
    assert browser.execute_script("return [document.contentType, window.opener]") == [
        "application/pdf", None]
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "uploaded-pdf-page.png"))


def _new_tab(browser: Any, wait: Any, link: Any) -> str:
    """Click link, switch to the tab it opens and return that tab's URL."""
    before = set(browser.window_handles)
    link.click()
    wait.until(lambda d: len(d.window_handles) > len(before))
    [tab] = set(browser.window_handles) - before
    browser.switch_to.window(tab)
    wait.until(lambda d: d.current_url.startswith("http"))
    return str(browser.current_url)
