"""A stdlib stand-in for `intuned_runs.emulator.server.Emulator`, for checking the bench scripts themselves.

Same interface as the emulator the benchmarks measure against — `with StandinServer() as srv:` gives
`srv.url`, `srv.received` (records with `.at`, `.path`, `.body`), `srv.first_at` and `srv.last_at` — but
it answers every POST with `201 {"runId": ..., "status": "pending"}` and validates nothing. It is not a
figure of the project: reported figures are taken against the real emulator. Select it with
`--server standin` in `floor_apply.py` or `run.py` to check the bench machinery while the emulator is
missing or broken.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default listen backlog of 5 resets connections when 32 clients connect at once.
    request_queue_size = 128


@dataclass(frozen=True)
class Received:
    at: float
    path: str
    body: Any


class StandinServer:
    def __init__(self, complete_after: float = 0, latency_ms: int = 0) -> None:
        self.latency = latency_ms / 1000  # each start is answered after this long, as the emulator's --latency
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def first_at(self) -> float | None:
        return min((r.at for r in self.received), default=None)

    @property
    def last_at(self) -> float | None:
        return max((r.at for r in self.received), default=None)

    def __enter__(self) -> StandinServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _record(self, path: str, body: Any) -> str:
        with self._lock:
            self.received.append(Received(at=time.monotonic(), path=path, body=body))
            return f"ru_standin{next(self._ids):011d}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        record, latency = self._record, self.latency

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as httpx clients expect of a real server
            disable_nagle_algorithm = True  # headers and body go out as two writes

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                run_id = record(self.path, body)
                if latency:
                    time.sleep(latency)
                payload = json.dumps({"runId": run_id, "status": "pending"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
