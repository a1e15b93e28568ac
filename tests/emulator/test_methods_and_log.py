"""The emulator's answers to other methods (405 with `Allow`, HEAD without a body) and its `-v` log: one
line per request, never the key or a body (docs/emulator.md)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from typing import Any

import httpx
import pytest

from intuned_runs.emulator.server import Emulator
from tests.emulator.test_emulator import BODY, KEY, START, WS, error
from tests.helpers import cli_command, free_port, subprocess_env, wait_until

RESULT = f"/{WS}/projects/shop%2Fpricing/run/ru_x/result"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", START, "POST"),
        ("PUT", START, "POST"),
        ("DELETE", START, "POST"),
        ("POST", RESULT, "GET"),
        ("PATCH", RESULT, "GET"),
        ("OPTIONS", RESULT, "GET"),
    ],
)
def test_another_method_on_a_known_route_is_405_naming_the_right_one(method: str, path: str, allow: str) -> None:
    with Emulator() as emu, httpx.Client(timeout=5) as client:
        response = client.request(method, emu.url + path, json=BODY, headers=KEY)
    assert (response.status_code, response.headers["allow"]) == (405, allow)
    assert response.json() == error("METHOD_NOT_ALLOWED", "user", f"Method {method} not allowed here: use {allow}", 1)
    assert emu.received == []  # nothing was started


def _raw(port: int, request: str) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    return status, headers, body


def test_head_is_answered_like_get_without_a_body() -> None:
    with Emulator(complete_after=0) as emu:
        with httpx.Client(base_url=emu.url, timeout=5) as client:
            run_id = client.post(START, json=BODY, headers=KEY).json()["runId"]
            get = client.get(f"/{WS}/projects/shop%2Fpricing/run/{run_id}/result", headers=KEY)
        found = _raw(
            emu.port,
            f"HEAD /{WS}/projects/shop%2Fpricing/run/{run_id}/result HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\n"
            "connection: close\r\n\r\n",
        )
        wrong = _raw(emu.port, f"HEAD {START} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        unknown = _raw(emu.port, "HEAD /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert found[0] == "HTTP/1.1 200 OK"
    assert (found[1]["content-length"], found[2]) == (str(len(get.content)), b"")
    assert (wrong[0], wrong[1]["allow"], wrong[2]) == ("HTTP/1.1 405 Method Not Allowed", "POST", b"")
    assert (unknown[0], unknown[2]) == ("HTTP/1.1 404 Not Found", b"")


def test_verbose_logs_one_line_per_request_without_the_key_or_a_body() -> None:
    port = free_port()
    key = "emulator-key-Zq81xv"
    secret_value = "body-secret-P4ss-77"
    process = subprocess.Popen(
        [*cli_command(), "emulator", "-v", "--port", str(port), "--api-key", key, "--complete-after", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _listening(port), timeout=20, what="the emulator to listen")
        with httpx.Client(base_url=url, timeout=5) as client:
            body: dict[str, Any] = {"api": "a", "parameters": {"token": secret_value}}
            run_id = client.post(START, json=body, headers={"x-api-key": key}).json()["runId"]
            client.get(f"/{WS}/projects/shop%2Fpricing/run/{run_id}/result", headers={"x-api-key": key})
            client.post(START, content=json.dumps(body), headers={"x-api-key": "wrong-key-123456"})
            client.get(START, headers={"x-api-key": key})
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert out == ""
    assert err.splitlines() == [
        f"Emulator listening on {url} (workspace ids: any UUID)",
        f"POST {START} 201 {run_id}",
        f"GET /{WS}/projects/shop%2Fpricing/run/{run_id}/result 200 {run_id}",
        f"POST {START} 401 -",
        f"GET {START} 405 -",
    ]
    for value in (key, "wrong-key-123456", secret_value):
        assert value not in err


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
