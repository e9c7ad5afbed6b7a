"""Our /v1/chat/completions and /v1/models, driven by the official `openai` client against a
real server on loopback (scripted replies), with /api/ask's answers, limits and errors."""

from __future__ import annotations

import httpx
import openai
import pytest

from qa.answer.prompting import REFUSAL
from qa.config import Settings
from tests import test_api
from tests.test_api import REPLY, Serve
from tests.test_app import MEMBERS

serve = test_api.serve  # the fixture: create_api on loopback with scripted replies


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_openai_client_gets_the_api_answer_and_its_citations(serve: Serve) -> None:
    url, _, _ = serve(REPLY, REPLY, REPLY)
    expected = httpx.post(f"{url}/api/ask", json={"question": MEMBERS}, timeout=60).json()
    completion = client(url).chat.completions.create(
        model="qa", messages=[{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": MEMBERS}])
    assert completion.object == "chat.completion" and completion.model == "qa"
    [choice] = completion.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert choice.message.content == expected["text"] == REPLY
    extra = completion.model_extra or {}
    assert extra["citations"] == expected["citations"]
    assert extra["citations"][0]["source"] == "sco-un-special-event-2018.txt"
    assert extra["answer"]["text"] == REPLY and extra["answer"]["refused"] is False

    chunks = list(client(url).chat.completions.create(
        model="qa", stream=True, messages=[{"role": "user", "content": [
            {"type": "text", "text": MEMBERS}]}]))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == expected["text"]
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.choices[0].delta.content is None
    assert (last.model_extra or {})["citations"] == expected["citations"]
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_stream_ends_with_done_and_a_held_refusal_is_its_content(serve: Serve) -> None:
    url, generator, _ = serve(REFUSAL)
    with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=60, json={
            "model": "qa", "stream": True,
            "messages": [{"role": "user", "content": MEMBERS}]}) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in reply.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [httpx.Response(200, content=line[6:]).json() for line in lines[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert content == REFUSAL  # the refusal was held back while generated, then sent
    assert chunks[-1]["citations"] == [] and chunks[-1]["answer"]["refused"] is True
    assert chunks[-1]["answer"]["refusal"] == "model"
    assert len(generator.calls) == 2  # the pipeline asked again with more passages


def test_history_is_the_earlier_messages(serve: Serve) -> None:
    url, generator, _ = serve("When did this happen?", REPLY)
    client(url).chat.completions.create(model="qa", messages=[
        {"role": "user", "content": MEMBERS},
        {"role": "assistant", "content": "India and Pakistan [1]."},
        {"role": "user", "content": "And when?"}])
    rewrite = generator.calls[0][-1]["content"]  # the follow-up was rewritten with the history
    assert "India and Pakistan." in rewrite and "And when?" in rewrite


CASES = [
    ({"messages": [{"role": "user", "content": MEMBERS},
                   {"role": "assistant", "content": "x"}]},
     "messages: the last message must be the user's question"),
    ({"messages": [{"role": "system", "content": MEMBERS}]},
     "messages: the last message must be the user's question"),
    ({"messages": []}, "messages: List should have at least 1 item"),
    ({"messages": [{"role": "user", "content": MEMBERS}], "n": 2},
     "n: Input should be less than or equal to 1"),
    ({"messages": [{"role": "user", "content": MEMBERS}], "tools": []},
     "tools: Extra inputs are not permitted"),
    ({"messages": [{"role": "tool", "content": MEMBERS}]}, "messages.0.role: Input should be"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]},
     "messages.0.content"),
    ({"messages": [{"role": "user", "content": ""}]}, "the question is empty"),
    ({"messages": [{"role": "user", "content": "x" * 4001}, {"role": "user", "content": "hi"}]},
     "messages.0.content: at most 4000 characters"),
]


def test_invalid_chat_requests_get_clear_errors(serve: Serve) -> None:
    url, generator, _ = serve()
    with httpx.Client(base_url=url, timeout=30) as http:
        for body, message in CASES:
            reply = http.post("/v1/chat/completions", json=body)
            error = reply.json()["error"]
            assert error["type"] == "invalid_request_error" and error["code"] == 422
            assert (reply.status_code, message in error["message"]) == (422, True), \
                (body, reply.text[:300])
        assert http.post("/v1/chat/completions", content=b"{}",
                         headers={"Content-Type": "text/plain"}).status_code == 415
        assert http.get("/v1/chat/completions").status_code == 405
        missing = http.get("/v1/embeddings")
        assert (missing.status_code, missing.json()["error"]["message"]) == (
            404, "no such endpoint: /v1/embeddings")
    assert generator.calls == []
    with pytest.raises(openai.UnprocessableEntityError, match="the question is empty"):
        client(url).chat.completions.create(model="qa", messages=[{"role": "user",
                                                                   "content": " "}])


def test_models_lists_the_one_answering_model(serve: Serve) -> None:
    url, _, _ = serve()
    assert [m.id for m in client(url).models.list()] == ["qa"]


def test_chat_completions_share_the_api_rate_limit_and_cors(serve: Serve) -> None:
    url, _, _ = serve(config=Settings.from_env(rate_limit_per_minute=1, rate_limit_burst=1))
    assert httpx.post(f"{url}/api/ask", json={"question": ""}, timeout=30).status_code == 422
    with pytest.raises(openai.RateLimitError, match="too many questions from your address"):
        client(url).chat.completions.create(model="qa",
                                            messages=[{"role": "user", "content": MEMBERS}])
    page = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"}
    allowed = httpx.options(f"{url}/v1/chat/completions", headers=page, timeout=30)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    other = httpx.options(f"{url}/v1/chat/completions", timeout=30,
                          headers={**page, "Origin": "https://evil.example"})
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers

