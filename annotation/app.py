"""The FastAPI application: routers by resource, OpenAPI at /api/openapi.json, the built web viewer at /."""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import mimetypes
import re
import threading
from pathlib import Path

import anyio.to_thread

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.datastructures import Headers
from sqlalchemy.exc import IntegrityError
from starlette.middleware.gzip import GZipMiddleware

from annotation import __version__
from annotation.config import Settings
from annotation.db import make_engine, make_session_factory
from annotation.imaging import InstanceCache, UriError
from annotation.migrate import upgrade
from annotation.zones import UriPolicy, ZoneError
from annotation.routers import (admin_pages, assist, auth, exports, invites, items, manage, projects, review, rounds, service_tokens,
                                tasks, users)

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")

log = logging.getLogger("annotation.app")

CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
       "img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'")


class SecurityHeaders:
    """Pure ASGI middleware (BaseHTTPMiddleware costs milliseconds per request under load):
    nosniff, no referrer, no framing; CSP on the web app; no-store on API answers."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = scope.get("path", "").startswith("/api/")

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                         (b"x-frame-options", b"DENY")]
                if not is_api:
                    extra.append((b"content-security-policy", CSP.encode()))
                elif b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                headers.extend(h for h in extra if h[0] not in names)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_COMPRESSIBLE = frozenset({".js", ".mjs", ".css", ".wasm", ".json", ".svg", ".map", ".html", ".txt"})
IMMUTABLE = "public, max-age=31536000, immutable"


class HashedAssets:
    """/assets/NAME: Vite's content-hashed files (a new build gives new names), so they are cached for a
    year as immutable; each is gzip-compressed once (level 9, in a background thread at start) and
    kept in memory with its ETag: the viewer's 4.4 MB of JavaScript crosses the wire as about 1 MB.
    Where the build left NAME.br beside it (Brotli 11, vite.config.js), browsers that accept br get
    that instead (about 15% fewer bytes than gzip); the .br files are not served by their own name."""

    def __init__(self, directory: Path, compress: bool) -> None:
        self.directory = directory.resolve()
        self.compress = compress
        self._files: dict[str, tuple[bytes, bytes | None, bytes | None, str, str]] = {}
        self._lock = threading.Lock()
        if compress:
            threading.Thread(target=self._warm, name="assets-gzip", daemon=True).start()

    def _warm(self) -> None:
        for path in sorted(self.directory.iterdir(), key=lambda p: -p.stat().st_size):
            if path.suffix != ".br":
                self.load(path.name)

    def load(self, name: str) -> tuple[bytes, bytes | None, bytes | None, str, str] | None:
        """(raw, gzip or None, brotli or None, content type, ETag) of one asset, or None when there is no such file."""
        hit = self._files.get(name)
        if hit is not None or not _ASSET_NAME.match(name) or name.endswith(".br"):
            return hit
        path = self.directory / name
        if not path.is_file():
            return None
        raw = path.read_bytes()
        packed = None
        if self.compress and path.suffix in _COMPRESSIBLE and len(raw) > 1024:
            packed = gzip.compress(raw, compresslevel=9, mtime=0)
            if len(packed) >= len(raw):
                packed = None
        brotli = self.directory / f"{name}.br"
        entry = (raw, packed, brotli.read_bytes() if self.compress and brotli.is_file() else None,
                 mimetypes.guess_type(name)[0] or "application/octet-stream",
                 f'"{hashlib.sha256(raw).hexdigest()[:20]}"')
        with self._lock:
            return self._files.setdefault(name, entry)

    async def __call__(self, scope, receive, send) -> None:
        method = scope.get("method", "GET")
        name = scope["path"].rsplit("/", 1)[-1]
        entry = self._files.get(name) or await anyio.to_thread.run_sync(self.load, name)
        headers = Headers(scope=scope)
        if method not in ("GET", "HEAD") or entry is None:
            code, body = (405, b"method not allowed") if entry is not None else (404, b"not found")
            await send({"type": "http.response.start", "status": code,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        raw, packed, brotli, media_type, etag = entry
        common = [(b"cache-control", IMMUTABLE.encode()), (b"etag", etag.encode()), (b"vary", b"accept-encoding")]
        if headers.get("if-none-match") == etag:
            await send({"type": "http.response.start", "status": 304, "headers": common})
            await send({"type": "http.response.body", "body": b""})
            return
        body, extra = raw, []
        accepted = {part.split(";")[0].strip() for part in headers.get("accept-encoding", "").lower().split(",")}
        if brotli is not None and "br" in accepted:
            body, extra = brotli, [(b"content-encoding", b"br")]
        elif packed is not None and "gzip" in accepted:
            body, extra = packed, [(b"content-encoding", b"gzip")]
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode()), *common, *extra]})
        await send({"type": "http.response.body", "body": body if method == "GET" else b""})


class GovernedInstanceCache(InstanceCache):
    """The instance cache behind the store-zone gate: every read (registration, viewer, frames,
    exports) passes `UriPolicy.check` first, so an item stored before a stricter setting is refused too."""

    def __init__(self, max_bytes: int, policy: UriPolicy) -> None:
        super().__init__(max_bytes, [], [], ())  # the policy below is the whole rule
        self.policy = policy

    def cleaned(self, uri: str) -> bytes:
        try:
            self.policy.check(uri)
        except ZoneError as exc:
            raise UriError(str(exc)) from None
        return super().cleaned(uri)


class _SessionFactories:
    """GET/HEAD requests use plain transactions; others begin IMMEDIATE on SQLite (see db.make_engine)."""

    def __init__(self, settings: Settings) -> None:
        self.reader_engine = make_engine(settings.database_url)
        if self.reader_engine.dialect.name == "sqlite":
            self.writer_engine = make_engine(settings.database_url, writer=True)
        else:
            self.writer_engine = self.reader_engine
        self.reader = make_session_factory(self.reader_engine)
        self.writer = make_session_factory(self.writer_engine)

    def dispose(self) -> None:
        self.reader_engine.dispose()
        if self.writer_engine is not self.reader_engine:
            self.writer_engine.dispose()


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or Settings.from_env()
    if migrate:
        upgrade(settings.database_url)
    app = FastAPI(title="curate annotation service", version=__version__, openapi_url="/api/openapi.json",
                  docs_url="/api/docs", redoc_url=None, swagger_ui_oauth2_redirect_url=None)
    factories = _SessionFactories(settings)
    app.state.settings = settings
    app.state.factories = factories
    app.state.session_factory = factories.writer  # overridden per request method in deps.get_db
    app.state.instances = GovernedInstanceCache(settings.cache_mb * 1024 * 1024, settings.uri_policy())
    if not settings.store_uris:
        log.warning("ANNOTATION_STORE_URI is not set: item URIs are checked by their zone folder name only "
                    "(deid/derived); set it to the pipeline's store so nothing outside that store's zones is read")

    app.add_middleware(SecurityHeaders)
    if settings.compress:
        # API answers: JSON, and the DICOM objects and frames the viewers decode (deflate in gzip, level 1:
        # a few ms per 512x512 frame). Assets come precompressed (HashedAssets) and pass through untouched.
        app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=1)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 without the offending input echoed back: it may be an identifying value sent by mistake."""
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(IntegrityError)
    async def _conflict(request: Request, exc: IntegrityError) -> JSONResponse:
        """A unique constraint lost a race with a concurrent request: the client may retry."""
        return JSONResponse({"detail": "conflicting concurrent change; retry"}, status_code=409)

    for module in (auth, users, service_tokens, invites, projects, items, rounds, tasks, review, exports, manage,
                   admin_pages, assist):
        app.include_router(module.router)

    @app.get("/api/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    _mount_web(app, settings)
    return app


def viewer_chunks(dist: Path) -> list[str]:
    """The viewer chunk and the chunks it imports (Cornerstone's core is shared with the review page),
    from Vite's build manifest; without one, the single viewer-*.js file."""
    manifest = dist / ".vite" / "manifest.json"
    if manifest.is_file():
        entries = json.loads(manifest.read_text())
        viewer = entries.get("src/viewer.js")
        if viewer:
            return [viewer["file"], *(entries[i]["file"] for i in viewer.get("imports", [])
                                      if i in entries and not entries[i].get("isEntry"))]  # the page loads its entry
    found = sorted((dist / "assets").glob("viewer-*.js")) if (dist / "assets").is_dir() else []
    return [f"assets/{found[0].name}"] if len(found) == 1 else []


def _mount_web(app: FastAPI, settings: Settings) -> None:
    dist = settings.web_dist
    index = dist / "index.html"
    if (dist / "assets").is_dir():
        app.mount("/assets", HashedAssets(dist / "assets", settings.compress), name="assets")

    # The reading viewer's chunk (Cornerstone3D, about 1.2 MB compressed) is imported only on the task
    # page; announcing it with the page lets the browser fetch it while the app still checks the session.
    chunks = viewer_chunks(dist)
    preload = {"Link": ", ".join(f"</{c}>; rel=modulepreload" for c in chunks)} if chunks else {}

    @app.get("/", include_in_schema=False)
    def web_index() -> Response:
        if index.is_file():
            return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache", **preload})
        return HTMLResponse("<h1>curate annotation service</h1><p>The web viewer is not built: run "
                            "<code>bash annotation/install.sh</code>. The REST API is at /api/docs.</p>")
