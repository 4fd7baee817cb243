"""The HTTP side of ``lmbench explore``: FastAPI routes over an :class:`Explorer`, the page, and ``serve``.

Routes are plain ``def`` functions, so FastAPI runs each request in its worker thread pool: the page asks
every model separately and a slow model never blocks the others. Every error is one line of JSON,
``{"error": "..."}``: 400 for bad input, 503 for a model that failed to load.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import webbrowser
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from lmbench.explore.service import ExploreInputError, Explorer, ModelUnavailable

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)


def create_app(explorer: Explorer) -> FastAPI:
    """The FastAPI application serving ``explorer``'s models (the page at ``/``, JSON under ``/api``)."""
    app = FastAPI(title="lmbench explore", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.explorer = explorer

    @app.exception_handler(ExploreInputError)
    def bad_input(request: Request, exc: ExploreInputError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(RequestValidationError)
    def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        value = first.get("input")
        shown = f", got {value!r}" if value is not None and not isinstance(value, dict) else ""
        return _error(400, f"{where}: {first.get('msg', 'invalid value')}{shown}")

    @app.exception_handler(ModelUnavailable)
    def unavailable(request: Request, exc: ModelUnavailable) -> JSONResponse:
        return _error(503, str(exc))

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/models")
    def models() -> dict[str, Any]:
        return {"run_dir": str(explorer.run_dir), "models": explorer.models()}

    @app.get("/api/next")
    def next_tokens(
        prefix: str = "", k: int = 10, model: str | None = None, token: str | None = None
    ) -> dict[str, Any]:
        if model is None:
            return explorer.next_all(prefix, k, token)
        answer = explorer.next_tokens(model, prefix, k, token)
        out = {"prefix_tokens": answer["prefix_tokens"], "models": {model: answer["top"]}}
        if token:
            out["picked"] = {model: answer["picked"]["prob"]}
        return out

    @app.get("/api/attention")
    def attention(model: str, text: str = "") -> dict[str, Any]:
        return explorer.attention(model, text)

    @app.get("/api/backoff")
    def backoff(model: str, prefix: str = "", token: str | None = None) -> dict[str, Any]:
        return explorer.backoff(model, prefix, token)

    @app.get("/api/generate")
    def generate(
        model: str, prefix: str = "", n: int = 20, seed: int = 0, temperature: float = Query(1.0)
    ) -> dict[str, Any]:
        return explorer.generate(model, prefix, n, seed, temperature)

    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    explorer: Explorer, host: str = "127.0.0.1", port: int = 8000, *, open_browser: bool = True
) -> None:
    """Serve the page until interrupted (uvicorn); opens the default browser unless told not to."""
    import uvicorn

    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    if open_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    uvicorn.run(create_app(explorer), host=host, port=port, log_level="warning")
