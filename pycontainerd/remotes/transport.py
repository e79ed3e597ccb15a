"""One registry host as seen by a client: URL building, auth retry, error mapping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from pycontainerd.remotes.auth import Authorizer
from pycontainerd.remotes.errors import Unauthenticated, error_for_connection, error_for_status

# Hub's API lives on a different host than the name people type.
DOCKER_HUB_API_HOST = "registry-1.docker.io"


@dataclass(frozen=True)
class RegistryHost:
    """Where a registry domain is served: network host, scheme and API root."""

    domain: str  # as written in references, e.g. "docker.io" or "127.0.0.1:5000"
    host: str  # what we connect to, e.g. "registry-1.docker.io"
    scheme: str = "https"
    api_root: str = "/v2"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}{self.api_root}"


def _is_replayable(data: Any) -> bool:
    return data is None or isinstance(data, bytes | bytearray | memoryview)


class Transport:
    """Sends requests to one registry host, authorizing for a fixed set of scopes."""

    def __init__(
        self,
        registry: RegistryHost,
        authorizer: Authorizer,
        session: requests.Session,
        *,
        scopes: Iterable[str],
        user_agent: str,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self._headers = dict(headers or {})  # sent with every request (a resolver's headers)
        self._authorizer = authorizer
        self._session = session
        self._scopes = tuple(scopes)
        self._user_agent = user_agent
        self._timeout = timeout

    def url(self, path: str) -> str:
        """Absolute URL for an API path (``/<repo>/blobs/...``) or a server-given Location."""
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith(self.registry.api_root + "/"):
            return urljoin(f"{self.registry.scheme}://{self.registry.host}", path)
        return self.registry.base_url + path

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
        allow_status: Iterable[int] = (),
    ) -> requests.Response:
        """Send one request, answering an auth challenge once.

        Returns the response when it succeeded or its status is in ``allow_status``;
        otherwise raises the errdefs kind for the status (see errors.error_for_status).
        """
        response = self._send(method, path, headers, data, params, stream)
        if response.status_code == 401 and self._should_retry(response, data):
            response.close()
            response = self._send(method, path, headers, data, params, stream)
        if response.status_code < 400 or response.status_code in allow_status:
            return response
        with response:
            raise error_for_status(response, what, self.registry.domain)

    def _should_retry(self, response: requests.Response, data: Any) -> bool:
        if not self._authorizer.add_challenge(self.registry.host, response):
            return False
        if not _is_replayable(data):
            raise Unauthenticated(
                f"{self.registry.domain} asked for authentication in the middle of an upload; "
                "retry the push"
            )
        return True

    def _send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        data: Any,
        params: Mapping[str, str] | None,
        stream: bool,
    ) -> requests.Response:
        all_headers = {"User-Agent": self._user_agent, **self._headers, **(headers or {})}
        authorization = self._authorizer.authorization(
            self.registry.host, self.registry.domain, self._scopes
        )
        if authorization:
            all_headers["Authorization"] = authorization
        try:
            return self._session.request(
                method,
                self.url(path),
                headers=all_headers,
                data=data,
                params=params,
                stream=stream,
                timeout=self._timeout,
                allow_redirects=True,
            )
        except requests.RequestException as exc:
            raise error_for_connection(exc, self.registry.domain, self.registry.scheme) from exc
