"""The emulator served over HTTP on loopback (docs/emulator.md): the standard library's
`ThreadingHTTPServer` speaking HTTP/1.1 keep-alive (see `_Server` for why not asyncio + h11)."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from intuned_runs.emulator.app import EmulatedApi, Response, error_body
from intuned_runs.errors import UsageError
from intuned_runs.net import is_loopback


class Emulator(EmulatedApi):
    """The emulated Run API served on `host:port` (port 0: a free one). `with Emulator(...) as emu:`
    serves on `emu.url` until the block ends; every keyword of EmulatedApi applies."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, log: Callable[[str], None] | None = None, **options: Any
    ) -> None:
        if not is_loopback(host):
            raise UsageError(f"--host {host}: the emulator binds to loopback only")
        super().__init__(**options)
        self.host, self.port = host, port
        # -v: one line per request (method, path, status, run ID), never the key or a body (docs/emulator.md)
        self.log = log
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"http://[{self.host}]:{self.port}" if ":" in self.host else f"http://{self.host}:{self.port}"

    def start(self) -> Emulator:
        try:
            server = _Server(self)
        except OSError as e:
            raise UsageError(f"the emulator cannot listen on {self.host}:{self.port}: {e.strerror}") from e
        self.open_record()
        self._server, self.port = server, server.server_address[1]
        self._stopping.clear()
        # A short poll interval: stop() (and so every test) waits for the accept loop to notice.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name="intuned-runs-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every kept-alive connection (a hanging request gets no answer)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        self._stopping.set()  # wakes requests sleeping for latency or hang: their sockets are shut
        thread.join()
        self._thread = None
        self.close_record()

    def serve_forever(self, stop: threading.Event) -> None:
        """Serve until `stop` is set (the CLI's signal handlers set it)."""
        if self._thread is None:
            self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    """One thread per connection, kept alive (HTTP/1.1).

    Chosen by measurement over an asyncio + h11 server running the same `_respond` (2 shared cores,
    32 keep-alive clients, 8,000 starts, 6 interleaved rounds): ~5,000 vs ~3,500 requests/s, ~6,000 vs
    ~4,500 per server CPU-second. Its sends release the GIL, so the kernel's loopback work overlaps the
    parsing of the next request instead of queueing behind it on the one event-loop thread.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 512  # 32 clients connecting at once must not overflow the accept backlog

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.address_family = socket.AF_INET6 if ":" in emulator.host else socket.AF_INET
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((emulator.host, emulator.port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host name (socket.getfqdn): slow, and not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.emulator.host, self.server_address[1]

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # the handler's blocking read returns at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that went away is not an error
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients use one connection pool
    server_version = "intuned-runs-emulator"
    sys_version = ""
    wbufsize = -1  # buffered: headers and body leave in one send (no Nagle/delayed-ACK stall)
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, alive=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, alive=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # http.server's own lines would show every header; the emulator logs its own (`_write`)

    def do_GET(self) -> None:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self.send_error(411, "Send the request body with a Content-Length")
            return
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            self.send_error(400, "Bad Content-Length")
            return
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:
            # The client went away mid-body (killed while sending): like a real server, start nothing.
            self.close_connection = True
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        emulator = self.server.emulator
        response = emulator.respond(self.command, self.path, headers, body)
        if response.delay > 0:
            emulator._stopping.wait(response.delay)
        self._write(response)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP: answer in the API's error shape, then close."""
        self.close_connection = True
        text = message or HTTPStatus(code).phrase
        self._write(Response(code, error_body(code, text, [], self.server.emulator.correlation())))

    def _write(self, response: Response) -> None:
        self.send_response_only(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(response.body)))  # on HEAD too: what GET would send
        if response.retry_after is not None:
            self.send_header("Retry-After", response.retry_after)
        if response.allow is not None:
            self.send_header("Allow", response.allow)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        log = self.server.emulator.log
        if log is not None:
            path = str(getattr(self, "path", "") or "").split("?", 1)[0]  # unset on a malformed request line
            log(f"{self.command or '-'} {path or '-'} {response.status} {response.run_id or '-'}")
