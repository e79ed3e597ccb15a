"""A loopback proxy in front of a registry that counts requests and can hold blob GETs.

Holding every blob GET until enough pulls have asked for the manifest makes
pulls started at once really overlap, however the machine schedules them.
"""

from __future__ import annotations

import collections
import http.client
import http.server
import threading

#: Only if the pulls never all arrive: held blobs are released anyway.
FALLBACK_RELEASE_SECONDS = 30.0
_FORWARDED_HEADERS = ("Accept", "Range", "Authorization")
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive"}


class CountingProxy:
    """Forwards to ``upstream``; ``requests[(method, path)]`` counts what came in.

    With ``hold_blobs_until_manifests`` N, blob GETs wait until N manifest
    requests (HEAD or GET) have come in.
    """

    def __init__(self, upstream: str, hold_blobs_until_manifests: int = 0) -> None:
        self.upstream = upstream
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self._manifests_wanted = hold_blobs_until_manifests
        self._manifests = 0
        self._released = threading.Event()
        if not hold_blobs_until_manifests:
            self._released.set()
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                proxy._forward(self, "GET")

            def do_HEAD(self) -> None:  # noqa: N802
                proxy._forward(self, "HEAD")

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def blob_gets(self, digest: str) -> int:
        """GETs of the blob ``digest``, in any repository."""
        suffix = f"/blobs/{digest}"
        return sum(n for (m, p), n in self.requests.items() if m == "GET" and p.endswith(suffix))

    def _forward(self, handler: http.server.BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self.requests[(method, handler.path)] += 1
            if "/manifests/" in handler.path:
                self._manifests += 1
                if self._manifests >= self._manifests_wanted:
                    self._released.set()
        if method == "GET" and "/blobs/" in handler.path:
            self._released.wait(FALLBACK_RELEASE_SECONDS)
        connection = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            headers = {k: v for k in _FORWARDED_HEADERS if (v := handler.headers.get(k))}
            connection.request(method, handler.path, headers=headers)
            response = connection.getresponse()
            handler.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    handler.send_header(key, value)
            handler.end_headers()
            while chunk := response.read(1 << 16):
                handler.wfile.write(chunk)
        finally:
            connection.close()

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
