"""A stand-in Hugging Face hub on 127.0.0.1 for pull tests, reached through HF_ENDPOINT: the model-info
API with file sizes and sha256, and /resolve/ downloads with HTTP range requests. It can cut a transfer
short (the connection closes mid-body) and then refuse further requests, as a dropped network does."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Faults:
    # file name -> bytes to send before the connection drops (once per entry in the list)
    cuts: dict[str, list[int]] = field(default_factory=dict)
    # after a cut, answer this many following requests for the file with 500
    errors_after_cut: int = 0
    pending_errors: dict[str, int] = field(default_factory=dict)
    # file name -> bytes to send before the transfer stalls (the connection stays open, nothing more
    # comes) until `release` is set: a slow network, for interrupting a pull at a known point.
    stalls: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class StandInHub:
    repo: str
    files: dict[str, bytes]
    token: str | None = None
    # Published sha256 per file, when it should differ from the real one (a damaged download).
    published_sha: dict[str, str] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    url: str = ""

    def sha(self, name: str) -> str:
        return self.published_sha.get(name) or hashlib.sha256(self.files[name]).hexdigest()

    def ranges(self, name: str) -> list[str | None]:
        return [r for m, p, r in self.requests if m == "GET" and p.endswith("/" + name)]


def _handler(hub: StandInHub) -> type[BaseHTTPRequestHandler]:
    resolve = re.compile(rf"^/{re.escape(hub.repo)}/resolve/[^/]+/(?P<name>.+)$")
    info = re.compile(rf"^/api/models/{re.escape(hub.repo)}(?:/revision/[^/?]+)?(?:\?.*)?$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _authorised(self) -> bool:
            if hub.token is None or self.headers.get("Authorization") == f"Bearer {hub.token}":
                return True
            self._empty(401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access restricted"})
            return False

        def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            hub.requests.append((self.command, self.path, self.headers.get("Range")))
            if not self._authorised():
                return
            if info.match(self.path) and body:
                siblings = [
                    {
                        "rfilename": name,
                        "size": len(data),
                        "blobId": hashlib.sha1(data).hexdigest(),
                        "lfs": {"size": len(data), "sha256": hub.sha(name), "pointerSize": 134},
                    }
                    for name, data in hub.files.items()
                ]
                payload = json.dumps(
                    {"id": hub.repo, "modelId": hub.repo, "sha": COMMIT, "siblings": siblings}
                )
                raw = payload.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                return
            match = resolve.match(self.path)
            if match is None or match["name"] not in hub.files:
                self._empty(404, {"X-Error-Code": "EntryNotFound"})
                return
            name = match["name"]
            data = hub.files[name]
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hub.sha(name)}"', "Accept-Ranges": "bytes"}
            if not body:
                self.send_response(200)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                return
            if hub.faults.pending_errors.get(name, 0) > 0:
                hub.faults.pending_errors[name] -= 1
                self._empty(500)
                return
            start = 0
            wanted = self.headers.get("Range")
            if wanted:
                start = int(re.match(r"bytes=(\d+)-", wanted).group(1))  # type: ignore[union-attr]
            chunk = data[start:]
            self.send_response(206 if start else 200)
            for key, value in headers.items():
                self.send_header(key, value)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            stall = hub.faults.stalls.pop(name, None)
            if stall is not None:
                self.wfile.write(chunk[:stall])
                self.wfile.flush()
                hub.faults.release.wait(timeout=120)
                self.close_connection = True
                self.connection.shutdown(2)
                return
            cuts = hub.faults.cuts.get(name)
            if cuts:
                sent = cuts.pop(0)
                self.wfile.write(chunk[:sent])
                self.wfile.flush()
                hub.faults.pending_errors[name] = hub.faults.errors_after_cut
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(chunk)

    return Handler


@contextmanager
def serve(hub: StandInHub) -> Iterator[StandInHub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()


def split_files(first: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(first.parent.glob(first.name.split("-00001-of-")[0] + "-*-of-*.gguf"))
    }
