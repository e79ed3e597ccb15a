"""A minimal in-process registry for protocol cases distribution cannot easily show.

It serves manifests and blobs from memory on 127.0.0.1, and can demand bearer
tokens from its own token endpoint (distribution's token auth needs TLS
certificates), break blob transfers part way, or ignore Range headers.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from pycontainerd.digest import digest_of_bytes

_MANIFEST_PATH = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB_PATH = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>[^/]+)$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeRegistryState:
    """What the fake serves and how it misbehaves; tests mutate it freely."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # tag/digest ->
    bearer: bool = False
    token_users: Mapping[str, str] = field(default_factory=dict)  # empty: anonymous tokens
    break_blob_after: dict[str, list[int]] = field(default_factory=dict)  # digest -> byte counts
    ignore_range: bool = False
    send_digest_on_head: bool = True
    requests: list[Recorded] = field(default_factory=list)
    token_scopes: list[list[str]] = field(default_factory=list)
    issued: int = 0

    def add_manifest(self, media_type: str, data: bytes, tag: str | None = None) -> str:
        digest = str(digest_of_bytes(data))
        self.manifests[digest] = (media_type, data)
        if tag:
            self.manifests[tag] = (media_type, data)
        return digest

    def add_blob(self, data: bytes) -> str:
        digest = str(digest_of_bytes(data))
        self.blobs[digest] = data
        return digest


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass

    @property
    def state(self) -> FakeRegistryState:
        return self.server.state

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch(head=False)

    def _dispatch(self, head: bool) -> None:
        url = urlsplit(self.path)
        self.state.requests.append(Recorded(self.command, url.path, dict(self.headers.items())))
        if url.path == "/token":
            self._issue_token(parse_qs(url.query))
            return
        if self.state.bearer and not self._authorized():
            self._challenge(url.path, head)
            return
        if url.path == "/v2/":
            self._send(200, b"{}", "application/json", head)
        elif match := _MANIFEST_PATH.match(url.path):
            self._serve_manifest(match.group("ref"), head)
        elif match := _BLOB_PATH.match(url.path):
            self._serve_blob(match.group("digest"), head)
        else:
            self._send(404, b'{"errors":[{"code":"NOT_FOUND"}]}', "application/json", head)

    def _authorized(self) -> bool:
        value = self.headers.get("Authorization", "")
        return value.startswith("Bearer tok-")

    def _challenge(self, path: str, head: bool) -> None:
        repo = "".join(
            m.group("repo") for m in (_MANIFEST_PATH.match(path), _BLOB_PATH.match(path)) if m
        )
        scope = f',scope="repository:{repo}:pull"' if repo else ""
        host, port = self.server.server_address[:2]
        self.send_response(401)
        self.send_header(
            "WWW-Authenticate",
            f'Bearer realm="http://{host}:{port}/token",service="fake-registry"{scope}',
        )
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _issue_token(self, query: dict[str, list[str]]) -> None:
        if self.state.token_users:
            user, secret = _basic_credentials(self.headers.get("Authorization", ""))
            if self.state.token_users.get(user) != secret or not user:
                self._send(401, b'{"details":"bad credentials"}', "application/json", False)
                return
        self.state.token_scopes.append(sorted(query.get("scope", [])))
        self.state.issued += 1
        body = json.dumps({"token": f"tok-{self.state.issued}", "expires_in": 300}).encode()
        self._send(200, body, "application/json", False)

    def _serve_manifest(self, ref: str, head: bool) -> None:
        found = self.state.manifests.get(ref)
        if found is None:
            self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json", head)
            return
        media_type, data = found
        extra = {}
        if self.state.send_digest_on_head or not head:
            extra["Docker-Content-Digest"] = str(digest_of_bytes(data))
        self._send(200, data, media_type if extra else "application/json", head, extra)

    def _serve_blob(self, digest: str, head: bool) -> None:
        data = self.state.blobs.get(digest)
        if data is None:
            self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', "application/json", head)
            return
        start = 0
        range_header = self.headers.get("Range", "")
        if range_header and not self.state.ignore_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
        status = 206 if start else 200
        body = data[start:]
        extra = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
        cut = self.state.break_blob_after.get(digest)
        if cut and not head:
            sent = cut.pop(0)
            self._send_broken(status, body, sent, extra)
            return
        self._send(status, body, "application/octet-stream", head, extra)

    def _send_broken(self, status: int, body: bytes, sent: int, extra: dict[str, str]) -> None:
        """Promise the whole body, send ``sent`` bytes, then drop the connection."""
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body[:sent])
        self.wfile.flush()
        self.close_connection = True

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        head: bool,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


def _basic_credentials(header: str) -> tuple[str, str]:
    if not header.startswith("Basic "):
        return "", ""
    user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    return user, secret


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FakeRegistryState


class FakeRegistry:
    """Context manager running the fake on a loopback port in a thread."""

    def __init__(self, state: FakeRegistryState | None = None) -> None:
        self.state = state or FakeRegistryState()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        assert self._server is not None, "fake registry not started"
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> FakeRegistry:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
