"""A local HTTP server for download tests, on 127.0.0.1 only: serves files, and misbehaves on request
(no Content-Length, a body cut short, a slow drip, a stall, an HTTP error)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

_MAX_DRIP_CHUNKS = 60  # a slow route sends at most this many chunks, so its thread always ends


@dataclass
class Route:
    """How to answer one path: ``body`` sent with ``status``; ``content_length`` False sends none."""

    body: bytes = b""
    status: int = 200
    content_length: bool = True
    cut_after: int | None = None  # bytes sent before the connection is closed
    chunk_delay_s: float = 0.0  # pause between chunks of ``chunk`` bytes (slow drip)
    chunk: int = 1 << 16
    stall_s: float = 0.0  # pause after the headers, before any byte of the body


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        if route.status != 200:
            self.send_error(route.status)
            return
        self.send_response(200)
        if route.content_length:
            self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        body = route.body if route.cut_after is None else route.body[:route.cut_after]
        try:
            self.wfile.flush()
            time.sleep(route.stall_s)
            for i, start in enumerate(range(0, len(body), route.chunk)):
                if i and route.chunk_delay_s:
                    if i >= _MAX_DRIP_CHUNKS:
                        break
                    time.sleep(route.chunk_delay_s)
                self.wfile.write(body[start:start + route.chunk])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what the test wants
        self.close_connection = True

    def log_message(self, *args):
        pass


class WeightsServer:
    """``server.routes[path] = Route(...)``; ``server.url``; ``server.requests`` lists the paths asked for."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes, self.httpd.requests = {}, []
        self.routes, self.requests = self.httpd.routes, self.httpd.requests
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def serve(self, path: str, body: bytes, **route) -> str:
        """Serve ``body`` at ``path``; returns its URL."""
        self.routes[path] = Route(body, **route)
        return self.url + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def weights_server():
    """A `WeightsServer` for the test."""
    server = WeightsServer()
    yield server
    server.close()


@pytest.fixture
def weights_cache(tmp_path, monkeypatch):
    """An empty torch.hub folder for the test; the weights cache is its ``checkpoints`` folder."""
    hub = tmp_path / "torch_hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    for name in ("TRAINWRIGHT_DOWNLOAD_MAX_BYTES", "TRAINWRIGHT_DOWNLOAD_DEADLINE_S",
                 "TRAINWRIGHT_DOWNLOAD_STALL_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    return hub / "checkpoints"


def files_in(folder) -> list[str]:
    """Names of every file in ``folder`` (hidden ones included), sorted; [] when it does not exist."""
    folder = Path(folder)
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
