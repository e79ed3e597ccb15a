"""A loopback proxy in front of a registry that counts requests and can hold GETs.

Holding a blob until some moment orders a pull's steps for a test (a layer
applied while a later one still downloads); holding every blob until enough
pulls asked for the manifest makes pulls started at once really overlap.
"""

from __future__ import annotations

import collections
import http.client
import http.server
import threading
from collections.abc import Callable

#: Only if the pulls never all arrive: held blobs are released anyway.
FALLBACK_RELEASE_SECONDS = 30.0
_FORWARDED_HEADERS = ("Accept", "Range", "Authorization")
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive"}


class CountingProxy:
    """Forwards to ``upstream``; ``requests[(method, path)]`` counts what came in.

    GETs whose path ``held`` accepts wait until :meth:`release` (or, with
    ``release_after_manifests`` N, until N manifest requests came in); by
    default none is held.
    """

    def __init__(
        self,
        upstream: str,
        *,
        held: Callable[[str], bool] = lambda path: False,
        release_after_manifests: int = 0,
    ) -> None:
        self.upstream = upstream
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self._held = held
        self._manifests_wanted = release_after_manifests
        self._manifests = 0
        self._released = threading.Event()
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

    def release(self) -> None:
        """Let the held GETs (and any later one) through."""
        self._released.set()

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
                if self._manifests_wanted and self._manifests >= self._manifests_wanted:
                    self.release()
        if method == "GET" and self._held(handler.path):
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
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
