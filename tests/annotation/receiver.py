"""A small real HTTP server on loopback that records what the service POSTs (webhooks, Airflow's
asset-event route) and answers from a script of status codes, so retries can be seen."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """`statuses[path]`: codes answered in turn to POSTs on that path (then 200); `replies[path]`:
    the JSON body answered there (default {"ok": ...})."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    replies: dict[str, Any] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                               json.loads(raw or b"null")))
                script = outer.statuses.get(self.path) or []
                code = script.pop(0) if script else 200
                body = json.dumps(outer.replies.get(self.path, {"ok": code < 300})).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
