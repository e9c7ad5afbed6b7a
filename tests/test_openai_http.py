"""The openai backend's HTTP handling against real servers on loopback, without a model: our
own /v1/chat/completions (scripted replies) stands for an OpenAI-compatible server; a port
with nothing on it for one that is down."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.errors import GeneratorUnavailable, SettingsError
from qa.generate.openai_backend import OpenAIGenerator
from qa.generate.registry import describe
from qa.serve.api import create_api
from qa.types import Message
from tests import test_api
from tests.test_api import REPLY, PacedGenerator, Serve, running
from tests.test_app import MEMBERS, free_port

serve = test_api.serve  # the fixture: create_api on loopback with scripted replies
QUESTION: list[Message] = [{"role": "user", "content": MEMBERS}]
KEY = "sk-test-secret-4711"


class StallingGenerator(PacedGenerator):
    """Gives the first half of its reply, then waits for `release` before the rest."""

    def __init__(self, *replies: str) -> None:
        super().__init__(*replies)
        self.release = threading.Event()

    def pieces(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        for i, piece in enumerate(super().pieces(messages, max_new_tokens)):
            if i == len(self.replies[0]) // 6:
                self.release.wait(60)
            yield piece


def down() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


def test_streams_a_reply_and_falls_back_when_logprobs_are_refused(serve: Serve) -> None:
    url, _, _ = serve(REPLY, REPLY)
    generator = OpenAIGenerator(f"{url}/v1", api_key=KEY)
    assert generator.name == "(the server's first model)"  # not asked yet
    stream = generator.stream(QUESTION, 64)
    assert "".join(stream) == REPLY
    assert generator.name == "qa"  # the first model the server lists
    # Our endpoint rejects `logprobs` (422): asked again without, the reply has none.
    assert (generator.logprobs, stream.reply_logprob, generator._ask_logprobs) == (
        False, None, False)
    assert generator.count_tokens("abcdefghi") == 3  # no tokenize endpoint: bytes / 4
    assert generator.prompt_tokens(QUESTION) == [0] * 16  # "user: " and 57 characters
    generator.keep_prefix(QUESTION)  # a no-op: the server caches prefixes itself


def test_closing_the_stream_closes_the_response_and_stops_the_server(serve: Serve) -> None:
    generation = PacedGenerator("India and Pakistan " * 100 + "[1].", delay=0.05)
    url, _, _ = serve(generator=generation)
    stream = OpenAIGenerator(f"{url}/v1", model="qa").stream(QUESTION, 64)
    assert next(stream)
    stream.close()
    assert generation.closed.wait(10), "the server kept generating after the stream closed"
    assert generation.produced < len(generation.replies[0]) // 3 / 2


def test_a_server_that_is_down_is_a_clear_error_after_bounded_retries() -> None:
    url = down()
    message = (f"the generator at {url} is unreachable: connection refused (after 3 tries); "
               "check that it runs and QA_OPENAI_BASE_URL")
    for model in ("", "m"):  # "": asks for the model list first
        generator = OpenAIGenerator(url, model=model, api_key=KEY, backoff=0.01)
        with pytest.raises(GeneratorUnavailable) as caught:
            list(generator.stream(QUESTION, 8))
        assert str(caught.value) == message and GeneratorUnavailable.http_status == 503


def test_429_is_retried_after_its_retry_after(serve: Serve) -> None:
    url, _, _ = serve(config=Settings.from_env(rate_limit_per_minute=60, rate_limit_burst=1))
    assert httpx.post(f"{url}/api/search", json={"query": "SCO"}, timeout=30).status_code == 200
    generator = OpenAIGenerator(f"{url}/v1", model="qa", backoff=0.01)
    # The bucket is empty: 429 with Retry-After: 1, then the second try gets the reply.
    assert "".join(generator.stream(QUESTION, 64)) == REPLY


def test_a_busy_server_503_gives_up_after_the_last_try(serve: Serve) -> None:
    gate = threading.Event()
    generation = PacedGenerator(REPLY, gate=gate)
    url, _, _ = serve(generator=generation)
    first = threading.Thread(target=httpx.post, args=(f"{url}/api/ask",),
                             kwargs={"json": {"question": MEMBERS}, "timeout": 60})
    first.start()
    try:
        assert generation.started.wait(30)
        generator = OpenAIGenerator(f"{url}/v1", model="qa", retries=2, backoff=0.01)
        with pytest.raises(GeneratorUnavailable) as caught:
            list(generator.stream(QUESTION, 64))
    finally:
        gate.set()
        first.join(60)
    assert str(caught.value) == (f"the generator at {url}/v1 is unreachable: HTTP 503 (retry "
                                 "after 5 s) (after 2 tries); check that it runs and "
                                 "QA_OPENAI_BASE_URL")


def test_a_stall_mid_reply_ends_at_the_read_timeout(serve: Serve) -> None:
    generation = StallingGenerator(REPLY)
    url, _, _ = serve(generator=generation)
    stream = OpenAIGenerator(f"{url}/v1", model="qa", timeout=5).stream(QUESTION, 64)
    try:
        assert REPLY.startswith(next(stream))
        with pytest.raises(GeneratorUnavailable, match=(
                r"stopped answering: no reply within the timeout$")):
            list(stream)
    finally:
        generation.release.set()


def test_api_ask_answers_503_with_the_reason_when_the_generator_is_down(
        corpus_index, embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_OPENAI_API_KEY", KEY)
    url = down()
    settings = Settings.from_env(backend="openai", openai_base_url=url, openai_model="m")
    qa = QA(settings, corpus_index, embedder)
    with running(create_api(qa, mount_ui=False)) as app:
        reply = httpx.post(f"{app}/api/ask", json={"question": MEMBERS}, timeout=60)
        health = httpx.get(f"{app}/api/health", timeout=30).json()
    assert reply.status_code == 503
    assert reply.json() == {"error": f"the generator at {url} is unreachable: connection "
                                     "refused (after 3 tries); check that it runs and "
                                     "QA_OPENAI_BASE_URL"}
    assert health["generator"] == {
        "backend": "openai", "model": "m", "where": url, "logprobs": "asked for; no reply yet",
        "refusal_signals": ["top_similarity", "support", "grounded", "retried", "citations"]}
    assert KEY not in reply.text + str(health) + repr(settings)


@pytest.mark.parametrize(("env", "message"), [
    ({"QA_BACKEND": "openai"}, "backend openai needs QA_OPENAI_BASE_URL, for example"),
    ({"QA_BACKEND": "openai", "QA_OPENAI_BASE_URL": "ftp://host/v1"},
     "openai_base_url must be an http(s) URL like http://127.0.0.1:8080/v1, got "
     "'ftp://host/v1'"),
    ({"QA_BACKEND": "openai", "QA_OPENAI_BASE_URL": "http://user:hunter2@host/v1"},
     "openai_base_url must not hold credentials; set QA_OPENAI_API_KEY instead"),
    ({"QA_BACKEND": "openai", "QA_OPENAI_BASE_URL": "http://h/v1", "QA_OPENAI_TIMEOUT": "0"},
     "openai_timeout must be positive, got 0.0"),
])
def test_openai_settings_are_checked(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert str(caught.value).startswith(message) and "hunter2" not in str(caught.value)


def test_describe_never_shows_credentials_or_queries() -> None:
    settings: Any = Settings.from_env({"QA_BACKEND": "openai",
                                       "QA_OPENAI_BASE_URL": "https://gpu.example:8443/v1?k=s"})
    assert describe(settings)["where"] == "https://gpu.example:8443/v1"


def test_the_chat_says_the_generator_is_unreachable(corpus_index, embedder) -> None:
    from qa.serve.gradio_app import ChatHandlers
    from qa.serve.state import Models
    from qa.serve.uploads import UploadStore

    url = down()
    settings = Settings.from_env(backend="openai", openai_base_url=url)
    models = Models(QA(settings, corpus_index, embedder))
    models.load_in_background().join(60)  # no request at load: a server down now may come up
    assert (models.ready, models.error, models.state) == (True, "", "ready")
    store = UploadStore(settings, embedder)
    handlers = ChatHandlers(models.qa, models, store)
    *_, (box, chat, _, answers) = handlers.ask(MEMBERS, [], 3, False, "", [], None)
    store.close()
    assert box == MEMBERS and answers == []  # the question stays in the box to ask again
    shown = html.unescape(re.sub(r"<[^>]+>", "", chat[-1]["content"]))
    assert shown == (f"Sorry, answering failed: the generator at {url} is unreachable: "
                     "connection refused (after 3 tries); check that it runs and "
                     "QA_OPENAI_BASE_URL")
