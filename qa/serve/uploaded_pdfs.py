"""The PDFs a browser session uploaded, shown inline by the browser's own viewer: each is found
by its session's and its own random id (never by a path), and served as application/pdf in a
sandbox, so that the Sources panel can link the page a citation is on."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from qa.serve.uploads import Uploads

PREFIX = "uploaded"  # the route's first path segment; links are relative to the app's page
HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter()


class UploadedPdfs:
    """The sessions whose uploads can be opened, by their random key; a session leaves when its
    uploads are closed or dropped."""

    def __init__(self) -> None:
        self._sessions: weakref.WeakValueDictionary[str, Uploads] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def add(self, uploads: Uploads) -> None:
        with self._lock:
            self._sessions[uploads.key] = uploads

    def path(self, key: str, file_id: str) -> tuple[Path, str] | None:
        """The file and its name for a session's key and a file id of that session."""
        with self._lock:
            uploads = self._sessions.get(key)
        name = uploads.pdfs.get(file_id) if uploads is not None else None
        if uploads is None or name is None:
            return None
        path = uploads.folder / "docs" / name
        return (path, name) if path.is_file() else None


def links(uploads: Uploads | None) -> Mapping[str, str]:
    """The URL of each uploaded PDF by its source name, relative to the app's page."""
    if uploads is None:
        return {}
    return {name: f"{PREFIX}/{uploads.key}/{file_id}" for file_id, name in uploads.pdfs.items()}


@router.get(f"/{PREFIX}/{{key}}/{{file_id}}", include_in_schema=False)
def uploaded_pdf(key: str, file_id: str, request: Request) -> FileResponse:
    """An uploaded PDF, inline, for the browser's viewer; 404 for any other id."""
    found = request.app.state.uploaded_pdfs.path(key, file_id)
    if found is None:
        raise HTTPException(404, "no such uploaded PDF (it may belong to an ended session)")
    path, name = found
    return FileResponse(path, media_type="application/pdf", filename=name,
                        content_disposition_type="inline", headers=HEADERS)
