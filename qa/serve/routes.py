"""The HTTP routes: /api/* (JSON and server-sent events), /widget.js and /widget/demo.

Handlers get the running server's state through FastAPI's dependencies (`Runtime`), set by
`qa.serve.api.create_api`."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from qa.answer.pipeline import QA
from qa.answer.questions import check_question
from qa.config import Settings
from qa.errors import QAError
from qa.generate.registry import describe
from qa.serve.keys import ApiKeys
from qa.serve.limits import GenerationSlots, RateLimiter, retry_after
from qa.serve.state import Models
from qa.serve.streaming import Generation, sse_stream
from qa.types import Answer

WEB = Path(__file__).resolve().parent / "web"
MAX_HISTORY = 20  # messages of earlier turns sent with a follow-up question
MAX_TURN_CHARS = 4000
MAX_TOP_K = 20
BUSY_RETRY_S = 5
LOADING_RETRY_S = 10
ROUTES = {"ask", "ask/stream", "search", "health", "documents"}


class Turn(BaseModel):
    """One earlier message of the conversation."""

    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_TURN_CHARS)


class AskRequest(BaseModel):
    """A question, the conversation so far (for follow-ups) and how many passages to use."""

    model_config = ConfigDict(extra="forbid", strict=True)
    question: str = Field(description="The question (at most max_question_chars characters)")
    history: list[Turn] = Field(default_factory=list, max_length=MAX_HISTORY)
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)


class SearchRequest(BaseModel):
    """A query for retrieval only (no answer is generated)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    query: str = Field(description="The query (at most max_question_chars characters)")
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)


class ApiError(QAError):
    """An error answered as JSON `{"error": message}` with its status code (and Retry-After)."""

    def __init__(self, status: int, message: str, retry: float | None = None) -> None:
        super().__init__(message)
        self.http_status = status
        self.headers = {"Retry-After": retry_after(retry)} if retry is not None else {}


@dataclass(frozen=True)
class ApiState:
    """What the routes work with: the pipeline, the model registry (None: the model loads on
    the first question), the limits and the API keys of the running server."""

    qa: QA
    models: Models | None
    settings: Settings
    slots: GenerationSlots
    limiter: RateLimiter
    keys: ApiKeys = field(default_factory=ApiKeys)


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


Runtime = Annotated[ApiState, Depends(_state)]
router = APIRouter()


def start_generation(state: ApiState, body: AskRequest) -> Generation:
    """The generation of an answer, once the question, the model and a free slot allow it."""
    question = check_question(body.question, state.settings.max_question_chars)
    models = state.models
    if models is not None and models.error:
        raise ApiError(503, f"the model failed to load: {models.error}")
    if models is not None and not models.ready:
        raise ApiError(503, "the model is still loading; retry shortly", LOADING_RETRY_S)
    if not state.slots.try_acquire():
        raise ApiError(503, "busy answering other questions; retry in a few seconds",
                       BUSY_RETRY_S)
    history = [{"role": t.role, "content": t.content} for t in body.history]
    return Generation(state.qa, question, history, body.top_k, state.slots,
                      state.settings.max_answer_seconds)


async def final_answer(generation: Generation, request: Request) -> Answer | None:
    """The generation's checked answer (None: the client went away); its error as ApiError."""
    answer = None
    async for kind, payload in generation.events(request):
        if kind == "error":
            raise ApiError(*payload)
        if kind == "event" and payload.answer is not None:
            answer = payload.answer
    return answer


@router.post("/api/ask", summary="Answer a question (the full Answer as JSON)")
async def ask(body: AskRequest, request: Request, state: Runtime) -> Response:
    answer = await final_answer(start_generation(state, body), request)
    if answer is None:  # the client went away; nobody reads this
        return Response(status_code=499)
    return JSONResponse(answer.to_dict())


@router.post("/api/ask/stream", summary="Answer a question as server-sent events",
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "events: token, citation, done, error"}})
async def ask_stream(body: AskRequest, request: Request, state: Runtime) -> StreamingResponse:
    return StreamingResponse(sse_stream(start_generation(state, body), request),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/api/search", summary="The passages retrieved for a query, without an answer")
async def search(body: SearchRequest, state: Runtime) -> dict[str, Any]:
    query = check_question(body.query, state.settings.max_question_chars, what="query")
    retriever = state.qa.retriever  # one index version for the whole search
    hits = await run_in_threadpool(retriever.search, query, body.top_k)
    return {"query": query, "build_id": retriever.index.version,
            "hits": [asdict(hit) for hit in hits]}


@router.get("/api/health", summary="Index and model status")
async def health(state: Runtime) -> dict[str, Any]:
    qa, models, settings = state.qa, state.models, state.settings
    model_state = models.state if models is not None else "loads on first question"
    failed = models is not None and bool(models.error)
    ready = models is None or (models.ready and not failed)
    index = qa.index  # one version, even while swap_index replaces it
    manifest = index.manifest
    loaded = models is not None and models.ready and not failed  # else it loads on demand
    return {"status": "error" if failed else "ok" if ready else "loading",
            "model": {"name": qa.model_name, "state": model_state, "ready": ready},
            "generator": describe(qa.settings, qa.generator if loaded else None),
            "index": {"build_id": index.version, "created_at": manifest.get("created_at"),
                      "documents": len(index.documents), "chunks": len(index.chunks),
                      "embedder": manifest.get("embedder", {}).get("name")},
            "limits": {"max_question_chars": settings.max_question_chars,
                       "max_new_tokens": settings.max_new_tokens,
                       "max_answer_seconds": settings.max_answer_seconds,
                       "max_concurrent_generations": settings.max_concurrent_generations,
                       "busy_generations": state.slots.busy,
                       "rate_limit_per_minute": settings.rate_limit_per_minute,
                       "rate_limit_burst": settings.rate_limit_burst}}


@router.get("/api/documents", summary="The indexed documents")
async def documents(state: Runtime) -> list[dict[str, Any]]:
    index, counts = state.qa.index, dict[str, int]()
    for chunk in index.chunks:
        counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
    return [{"id": d.id, "source": d.source, "title": d.title, "chars": len(d.text),
             "chunks": counts.get(d.id, 0)}
            for d in sorted(index.documents.values(), key=lambda d: d.source)]


@router.api_route("/api/{rest:path}", include_in_schema=False,
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def unknown(rest: str) -> JSONResponse:
    if rest in ROUTES:
        return JSONResponse({"error": "method not allowed"}, 405)
    return JSONResponse({"error": f"no such endpoint: /api/{rest}"}, 404)


_WIDGET = (WEB / "widget.js").read_bytes()
_DEMO_PAGE = (WEB / "demo.html").read_text(encoding="utf-8")


@router.get("/widget.js", include_in_schema=False)
async def widget_js() -> Response:
    return Response(_WIDGET, media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=300",
                             "X-Content-Type-Options": "nosniff"})


@router.get("/widget/demo", include_in_schema=False)
async def widget_demo(request: Request, state: Runtime) -> HTMLResponse:
    base = str(request.base_url).rstrip("/")
    key = state.keys.publishable  # publishable: made for pages; "" when there is none
    attribute = f' data-key="{html.escape(key)}"' if key else ""
    return HTMLResponse(_DEMO_PAGE.replace("{{BASE}}", html.escape(base))
                        .replace("{{KEY_SNIPPET}}", html.escape(attribute))
                        .replace("{{KEY}}", attribute))
