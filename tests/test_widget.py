"""The embeddable widget in headless Chromium, on pages served from other loopback origins."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from qa.answer.guard import LINK_REMOVED
from qa.answer.pipeline import QA
from qa.config import Settings
from qa.serve.api import create_api
from tests.browser import ARTIFACTS, chromium
from tests.fakes import ScriptedGenerator
from tests.test_api import REPLY, PacedGenerator, running
from tests.test_app import MEMBERS

HOST_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Someone else's page</title>
<style>button {{ background: red !important; font-size: 40px; }} p {{ color: green; }}</style>
</head><body>
<h1>Someone else's page</h1><p id="own">The page's own content.</p>
<script>window.pageScriptRan = true;</script>
<script src="{api}/widget.js" data-title="Ask about the UN-SCO event" data-accent="#0a7d4f"
        {extra} defer></script>
</body></html>"""

PROBE = """
const [api, done] = [arguments[0], arguments[arguments.length - 1]];
const body = JSON.stringify({question: "Which countries were granted full membership?"});
async function probe(path, init) {
  try {
    const reply = await fetch(api + path, init);
    return "read " + reply.status + " " + (await reply.text()).slice(0, 30);
  } catch (error) {
    return "blocked: " + error.name;
  }
}
Promise.all([
  probe("/api/health", {}),
  probe("/api/ask", {method: "POST", headers: {"Content-Type": "application/json"}, body}),
  probe("/api/ask", {method: "POST", headers: {"Content-Type": "text/plain"}, body}),
]).then(done);
"""

# Every DOM change of the widget's latest answer, to see the answer arrive piece by piece.
RECORD = """
const root = document.querySelector("qa-chat-widget").shadowRoot;
window.snapshots = [];
new MutationObserver(() => {
  const texts = root.querySelectorAll(".bot .text");
  if (texts.length) window.snapshots.push(texts[texts.length - 1].textContent);
}).observe(root, {childList: true, subtree: true, characterData: true});
"""


class Pages(BaseHTTPRequestHandler):
    """Serves the HTML pages of `self.server.pages` by path."""

    def do_GET(self) -> None:
        page = self.server.pages.get(self.path)  # type: ignore[attr-defined]
        body = (page or "not found").encode()
        self.send_response(200 if page else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@contextlib.contextmanager
def page_server(pages: dict[str, str]) -> Iterator[str]:
    """Serve pages from a thread on a free loopback port (another origin than the app)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    server.pages = pages  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


Start = Callable[..., str]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium for the widget tests, with the page's console log."""
    with chromium("1200,900", browser_log=True) as driver:
        yield driver


@pytest.fixture
def app_url(corpus_index, embedder) -> Iterator[Start]:
    """Start the API (which serves widget.js) with the given generator and config."""
    with contextlib.ExitStack() as stack:

        def start(generator: ScriptedGenerator, config: Settings | None = None) -> str:
            qa = QA(Settings.from_env(), corpus_index, embedder, generator)
            limits = config or Settings.from_env(rate_limit_per_minute=600, rate_limit_burst=100)
            app = create_api(qa, settings=limits, mount_ui=False)
            return stack.enter_context(running(app))

        yield start


def shadow(driver: Any, selector: str) -> Any:
    """The first element matching selector in the widget's shadow root (None if none)."""
    return driver.execute_script(
        "return document.querySelector('qa-chat-widget').shadowRoot.querySelector(arguments[0])",
        selector)


def ask(driver: Any, question: str) -> None:
    """Open the widget, type the question, press Enter and wait for the finished answer."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: shadow(d, ".launcher"))
    if shadow(driver, ".panel").is_displayed():  # open from the start: focus not taken
        shadow(driver, "#qa-input").click()
    else:  # opening moves the focus to the question box
        shadow(driver, ".launcher").click()
        wait.until(lambda d: shadow(d, "#qa-input").is_displayed())
    assert driver.execute_script(
        "return document.querySelector('qa-chat-widget').shadowRoot.activeElement.id"
    ) == "qa-input"
    box = shadow(driver, "#qa-input")
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: shadow(d, ".bot") and not shadow(d, ".bot[aria-busy]"))


def test_widget_streams_an_answer_with_a_citation_chip_on_another_origin(
        app_url: Start, browser: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    generator = PacedGenerator(REPLY, delay=0.05)
    generator.short = "India and Pakistan"
    api = app_url(generator)
    with page_server({"/": HOST_PAGE.format(api=api, extra="")}) as site:
        assert site != api
        browser.get(site + "/")
        shadow_ready = "return !!document.querySelector('qa-chat-widget')?.shadowRoot"
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(shadow_ready))
        launcher = shadow(browser, ".launcher")
        assert launcher.get_attribute("aria-label") == "Open chat: Ask about the UN-SCO event"
        assert launcher.get_attribute("aria-expanded") == "false"
        # The page's styles do not reach into the widget: the accent option does.
        assert launcher.value_of_css_property("background-color") == "rgba(10, 125, 79, 1)"
        browser.execute_script(RECORD)
        ask(browser, MEMBERS)

        answer = shadow(browser, ".bot .text")
        assert answer.text == REPLY
        short = shadow(browser, ".bot .short")  # the short answer, bold, above the answer
        assert short.text == "India and Pakistan" and short.value_of_css_property(
            "font-weight") == "700"
        snapshots = browser.execute_script("return window.snapshots")
        partial = {s for s in snapshots if 0 < len(s) < len(REPLY)}
        assert len(partial) >= 3 and all(REPLY.startswith(s) for s in partial), snapshots
        chip = shadow(browser, ".bot button.chip")
        assert chip.text == "[1]" and chip.get_attribute("aria-expanded") == "false"
        assert chip.get_attribute("aria-label").startswith(
            "Source 1: SCO Secretary-General: Combatting Global Challenges")
        quote = shadow(browser, ".bot blockquote")
        assert not quote.is_displayed()
        chip.click()
        assert quote.is_displayed() and chip.get_attribute("aria-expanded") == "true"
        assert " ".join(quote.text.split()).startswith(
            "The SCO Secretary-General mentioned major changes")
        assert "granting of full membership to India and Pakistan." in " ".join(
            quote.text.split())
        cite = shadow(browser, ".bot blockquote cite").text
        assert cite.startswith("[1] SCO Secretary-General: Combatting Global Challenges")
        assert "(sco-un-special-event-2018.txt), characters " in cite
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "widget-citation.png"))

        # Keyboard: Escape closes the panel and gives focus back to the launcher.
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
        assert not shadow(browser, ".panel").is_displayed()
        assert browser.execute_script(
            "return document.querySelector('qa-chat-widget').shadowRoot.activeElement"
            ".className") == "launcher"
        assert browser.find_element("id", "own").value_of_css_property("color") == \
            "rgba(0, 128, 0, 1)"  # the page is untouched
        assert browser.execute_script("return window.pageScriptRan") is True

        # The conversation (and the closed panel) survive a reload: sessionStorage.
        browser.refresh()
        WebDriverWait(browser, 30).until(lambda d: shadow(d, ".bot button.chip"))
        assert not shadow(browser, ".panel").is_displayed()
        shadow(browser, ".launcher").click()
        assert shadow(browser, ".bot .text").text == REPLY
        assert shadow(browser, ".user .text").text == MEMBERS


HOSTILE = ("India and Pakistan were granted full membership [1]. "
           "<img src=x onerror=alert(1)> <img src=x onerror=\"window.pwned=1\"> "
           "<script>window.pwned=2</script> [link](javascript:alert(1)) "
           "<a href=\"javascript:window.pwned=3\">x</a> [safe](https://example.org/ok)")

INSPECT = """
const root = document.querySelector("qa-chat-widget").shadowRoot;
const all = [...root.querySelectorAll("*")];
return {
  pwned: window.pwned === undefined ? null : window.pwned,
  dangerous: root.querySelectorAll("img, script, iframe, object, embed, svg image").length,
  handlers: all.flatMap(e => [...e.attributes].filter(a => /^on/i.test(a.name)).map(a => a.name)),
  scriptUrls: all.flatMap(e => [...e.attributes].filter(a => /javascript:/i.test(a.value))
                                              .map(a => a.name)),
  links: [...root.querySelectorAll("a")].map(a => [a.getAttribute("href"), a.rel, a.target]),
  text: root.querySelector(".bot .text").textContent,
  short: root.querySelector(".bot .short")?.textContent,
  pageImages: document.querySelectorAll("img").length,
};
"""


def test_hostile_model_output_stays_text(app_url: Start, browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    generator = ScriptedGenerator(HOSTILE)
    generator.short = "<img src=x onerror=alert(1)>"  # in the answer, so it is kept as the short
    api = app_url(generator)
    with page_server({"/": HOST_PAGE.format(api=api, extra="")}) as site:
        browser.get(site + "/")
        ask(browser, MEMBERS)
        for _ in range(2):  # as streamed, then as restored from sessionStorage
            found = browser.execute_script(INSPECT)
            assert found["pwned"] is None and found["dangerous"] == 0
            assert found["handlers"] == [] and found["scriptUrls"] == []
            assert found["links"] == []  # the output guard removes every link
            assert found["text"] == HOSTILE.replace("https://example.org/ok", LINK_REMOVED)
            assert found["pageImages"] == 0
            assert found["short"] == "<img src=x onerror=alert(1)>"  # as text
            browser.refresh()
            WebDriverWait(browser, 30).until(lambda d: shadow(d, ".bot .text"))
        assert browser.execute_script("return window.pwned === undefined")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "widget-hostile.png"))


def test_page_on_a_disallowed_origin_cannot_read_the_api(app_url: Start, browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    generator = ScriptedGenerator(REPLY)
    with page_server({"/": "<!doctype html><title>allowed</title>"}) as allowed:
        api = app_url(generator, Settings.from_env(allowed_origins=allowed,
                                                   rate_limit_per_minute=600,
                                                   rate_limit_burst=100))
        options = 'data-open="true" data-position="bottom-left"'
        with page_server({"/": HOST_PAGE.format(api=api, extra=options)}) as other:
            browser.get(other + "/")
            WebDriverWait(browser, 30).until(lambda d: shadow(d, ".panel"))
            assert shadow(browser, ".panel").is_displayed()  # data-open
            host = browser.find_element("css selector", "qa-chat-widget")
            assert host.value_of_css_property("left") == "20px"  # data-position
            results = browser.execute_async_script(PROBE, api)
            assert results == ["blocked: TypeError"] * 3
            ask(browser, MEMBERS)  # the widget loads (a script tag) but cannot get answers
            error = shadow(browser, ".bot .note")
            assert error.text == ("Could not reach the answer service (offline, or this site is "
                                  "not allowed).")
            assert error.get_attribute("role") == "alert"
            assert generator.calls == []  # the preflight stopped the question before the model
        browser.get(allowed + "/")  # the control: the allowed origin reads the same API
        results = browser.execute_async_script(PROBE, api)
        assert results[0].startswith("read 200 {")
        assert results[1].startswith('read 200 {"question"')
        assert results[2].startswith("read 415")



def test_the_widget_answers_with_its_publishable_key_when_the_api_needs_keys(
        app_url: Start, browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    widget_key = "pk-widget-0123456789abcdef"
    monkeypatch.setenv("QA_API_KEYS", "s3cret-key-0123456789abcdef")
    monkeypatch.setenv("QA_WIDGET_KEY", widget_key)
    generator = ScriptedGenerator(REPLY)
    pages: dict[str, str] = {}  # filled once the API's address is known
    with page_server(pages) as site:
        api = app_url(generator, Settings.from_env(allowed_origins=site,
                                                   rate_limit_per_minute=600,
                                                   rate_limit_burst=100))
        pages["/keyed"] = HOST_PAGE.format(api=api, extra=f'data-key="{widget_key}"')
        pages["/nokey"] = HOST_PAGE.format(api=api, extra="")
        browser.get(site + "/nokey")
        ask(browser, MEMBERS)
        assert shadow(browser, ".bot .note").text == (
            "Sorry: a valid API key is required (Authorization: Bearer KEY)")
        assert generator.calls == []
        browser.execute_script("sessionStorage.clear()")
        browser.get(site + "/keyed")
        WebDriverWait(browser, 30).until(lambda d: shadow(d, ".launcher"))
        ask(browser, MEMBERS)
        assert shadow(browser, ".bot .text").text == REPLY
