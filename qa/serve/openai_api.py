"""Our answers for OpenAI clients: `POST /v1/chat/completions` (JSON or streamed chunks) and
`GET /v1/models`, through the same generation, limits and errors as /api/ask.

The last user message is the question and the earlier user/assistant messages its history
(system messages are left out: the instructions are ours). The reply's content is the
cited answer text; the citations, and the whole answer, travel in extra fields."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from qa.serve.middleware import error_body
from qa.serve.routes import (
    MAX_HISTORY,
    MAX_TURN_CHARS,
    ApiError,
    AskRequest,
    Runtime,
    Turn,
    final_answer,
    start_generation,
)
from qa.serve.streaming import KEEPALIVE, Generation, paced
from qa.types import Answer

MODEL_ID = "qa"  # the one model /v1/models lists: answers from the indexed documents
ROUTES = {"chat/completions", "models"}
router = APIRouter()


class TextPart(BaseModel):
    """A text part of a message's content (other kinds of part are not accepted)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of the conversation, in the OpenAI format."""

    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatRequest(BaseModel):
    """A chat completion request. Sampling options are accepted and ignored: answers are
    greedy, one per request, at most QA_MAX_NEW_TOKENS long."""

    model_config = ConfigDict(extra="forbid", strict=True)
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_HISTORY + 5)
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    n: int = Field(default=1, ge=1, le=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    user: str | None = None


def ask_request(body: ChatRequest) -> AskRequest:
    """The question (the last message, a user's) and its history (earlier user and assistant
    messages), checked as /api/ask checks them."""
    turns = [(i, m) for i, m in enumerate(body.messages) if m.role in ("user", "assistant")]
    if not turns or turns[-1][1].role != "user" or turns[-1][0] != len(body.messages) - 1:
        raise ApiError(422, "messages: the last message must be the user's question")
    history = turns[:-1]
    if len(history) > MAX_HISTORY:
        raise ApiError(422, f"messages: at most {MAX_HISTORY} user and assistant messages "
                       "before the question")
    for i, message in history:
        if len(message.text()) > MAX_TURN_CHARS:
            raise ApiError(422, f"messages.{i}.content: at most {MAX_TURN_CHARS} characters")
    return AskRequest(question=turns[-1][1].text(),
                      history=[Turn(role=m.role, content=m.text())  # type: ignore[arg-type]
                               for _, m in history])


def completion(answer: Answer, ident: str, created: int) -> dict[str, Any]:
    """A chat.completion object whose content is the answer's text, with its citations."""
    return {"id": ident, "object": "chat.completion", "created": created, "model": MODEL_ID,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": answer.text}}],
            "citations": [asdict(c) for c in answer.citations], "answer": answer.to_dict()}


@router.post("/v1/chat/completions", summary="Answer the last user message (OpenAI format)")
async def chat_completions(body: ChatRequest, request: Request, state: Runtime) -> Response:
    generation = start_generation(state, ask_request(body))
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        return StreamingResponse(_chunks(generation, request, ident, created),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    answer = await final_answer(generation, request)
    if answer is None:  # the client went away; nobody reads this
        return Response(status_code=499)
    return JSONResponse(completion(answer, ident, created))


def _data(payload: Any) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _chunks(generation: Generation, request: Request, ident: str,
                  created: int) -> AsyncIterator[str]:
    """chat.completion.chunk events: the role, the answer's text as it is generated, then a
    last chunk with finish_reason, the citations and the checked answer; then [DONE]. A text
    the checks changed is in that chunk's `answer.text` (a held-back refusal is sent as
    content)."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return _data({"id": ident, "object": "chat.completion.chunk", "created": created,
                      "model": MODEL_ID, "choices": [{"index": 0, "delta": delta,
                                                      "finish_reason": finish}], **extra})

    yield chunk({"role": "assistant", "content": ""})
    sent = ""
    async for kind, payload in paced(generation, request):
        if kind == "keepalive":
            yield KEEPALIVE
            continue
        if kind == "error":
            yield _data(error_body("/v1/", payload[1], payload[0]))
            break
        if payload.kind == "token":
            sent += payload.text
            yield chunk({"content": payload.text})
        elif payload.answer is not None:
            answer: Answer = payload.answer
            if answer.text.startswith(sent) and answer.text != sent:
                yield chunk({"content": answer.text[len(sent):]})
            yield chunk({}, "stop", citations=[asdict(c) for c in answer.citations],
                        answer=answer.to_dict())
    yield "data: [DONE]\n\n"


@router.get("/v1/models", summary="The model that answers (OpenAI format)")
async def models() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0,
                                        "owned_by": "qa"}]}


@router.api_route("/v1/{rest:path}", include_in_schema=False,
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def unknown(rest: str) -> JSONResponse:
    path = f"/v1/{rest}"
    if rest in ROUTES:
        return JSONResponse(error_body(path, "method not allowed", 405), 405)
    return JSONResponse(error_body(path, f"no such endpoint: {path}", 404), 404)
