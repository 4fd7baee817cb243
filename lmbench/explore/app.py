"""The HTTP side of ``lmbench explore``: FastAPI routes over an :class:`Explorer`, the page, and ``serve``.

Routes are plain ``def`` functions, so FastAPI runs each request in its worker thread pool: the page asks
every model separately and a slow model never blocks the others. Every error is one line of JSON,
``{"error": "..."}``: 400 for bad input, 422 for a number or length outside its bounds (or not a number at
all), 503 for a model that failed to load.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
import webbrowser
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from lmbench.errors import ConfigError
from lmbench.explore.service import ExploreInputError, Explorer, ExploreRangeError, ModelUnavailable

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)


def create_app(explorer: Explorer) -> FastAPI:
    """The FastAPI application serving ``explorer``'s models (the page at ``/``, JSON under ``/api``)."""
    app = FastAPI(title="lmbench explore", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.explorer = explorer
    _add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_api_routes(app, explorer)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as one line of JSON: 400 bad input, 422 a value out of bounds or not a number, 503 a
    model that failed to load."""

    @app.exception_handler(ExploreInputError)
    def bad_input(request: Request, exc: ExploreInputError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(ExploreRangeError)
    def out_of_range(request: Request, exc: ExploreRangeError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(RequestValidationError)
    def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        value = first.get("input")
        shown = f", got {str(value)[:40]!r}" if value is not None and not isinstance(value, dict) else ""
        return _error(422, f"{where}: {first.get('msg', 'invalid value')}{shown}")

    @app.exception_handler(ModelUnavailable)
    def unavailable(request: Request, exc: ModelUnavailable) -> JSONResponse:
        return _error(503, str(exc))


def _add_api_routes(app: FastAPI, explorer: Explorer) -> None:
    """The JSON routes under ``/api``: each a thin call of one :class:`Explorer` method."""

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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, bound before anything is printed or served. A port in use is a
    :class:`ConfigError` naming it and the next free port; any other refusal names host, port and cause."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise ConfigError(f"--host {host}: not an address this machine can serve on ({e})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart without a wait
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            free = next_free_port(host, port)
            hint = f"; port {free} is free: --port {free}" if free else "; pick another with --port"
            raise ConfigError(
                f"--port {port}: port {port} on {host} is in use by another program{hint}"
            ) from None
        raise ConfigError(f"--port {port}: cannot serve on {host}:{port} ({e.strerror})") from None
    sock.set_inheritable(True)
    return sock


def next_free_port(host: str, port: int, tries: int = 100) -> int | None:
    """The first port after ``port`` that ``host`` can bind now (``None`` if none of the next ``tries``)."""
    for candidate in range(port + 1, min(port + 1 + tries, 65536)):
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, candidate, type=socket.SOCK_STREAM)[0]
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
            return candidate
        except OSError:
            continue
    return None


def serve(
    explorer: Explorer,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    open_browser: bool = True,
    sock: socket.socket | None = None,
) -> None:
    """Serve the page until interrupted (uvicorn) on ``sock`` (from :func:`bind`; bound here when absent);
    opens the default browser unless told not to."""
    import uvicorn

    sock = sock or bind(host, port)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    if open_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    server = uvicorn.Server(uvicorn.Config(create_app(explorer), log_level="warning"))
    server.run(sockets=[sock])
