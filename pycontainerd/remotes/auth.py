"""Registry authentication: challenges, basic credentials and bearer tokens.

The flow is the distribution token protocol: a request answered ``401`` carries
``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` (or ``Basic``); we
fetch a token from the realm for the repository scope we need, cache it per
(host, scopes) until it expires, and retry once with ``Authorization``.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import requests

from pycontainerd.remotes.errors import Unauthenticated, error_for_connection, error_for_status

# Given a registry host (``docker.io``, ``127.0.0.1:5000``) returns (username, secret)
# or None for anonymous access. An empty username with a secret means an identity token.
CredentialsFunc = Callable[[str], "tuple[str, str] | None"]

DEFAULT_TOKEN_LIFETIME = 60.0
# Refresh a little early so a token does not expire between check and use.
_EXPIRY_MARGIN = 5.0

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_AUTH_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN})\s*,?')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


@dataclass(frozen=True)
class Challenge:
    """One authentication challenge from a ``WWW-Authenticate`` header."""

    scheme: str  # lower-case: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value, which may hold several challenges."""
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        scheme_match = _SCHEME.match(header, position)
        if scheme_match is None:
            break
        position = scheme_match.end()
        params: dict[str, str] = {}
        while (param := _AUTH_PARAM.match(header, position)) is not None:
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[param.group(1).lower()] = value
            position = param.end()
        challenges.append(Challenge(scheme_match.group(1).lower(), params))
        while position < len(header) and header[position] in ", ":
            position += 1
    return challenges


def repository_scope(path: str, push: bool = False) -> str:
    """The token scope for a repository: ``repository:<path>:pull[,push]``."""
    return f"repository:{path}:pull,push" if push else f"repository:{path}:pull"


def basic_header(username: str, secret: str) -> str:
    token = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return f"Basic {token}"


@dataclass
class _Token:
    value: str
    expires_at: float


class Authorizer:
    """Keeps per-host challenges and a token cache; safe to share between threads."""

    def __init__(
        self,
        credentials: CredentialsFunc | None,
        session: requests.Session,
        user_agent: str,
        timeout: float,
    ) -> None:
        self._credentials = credentials
        self._session = session
        self._user_agent = user_agent
        self._timeout = timeout
        self._lock = threading.Lock()
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, tuple[str, ...]], _Token] = {}

    def _lookup_credentials(self, domain: str) -> tuple[str, str] | None:
        return self._credentials(domain) if self._credentials else None

    def authorization(self, host: str, domain: str, scopes: Iterable[str]) -> str | None:
        """The ``Authorization`` value for a request to ``host``, if we know its challenge."""
        with self._lock:
            challenge = self._challenges.get(host)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self._lookup_credentials(domain)
            return basic_header(*creds) if creds else None
        key = (host, _merge_scopes(challenge, scopes))
        with self._lock:
            token = self._tokens.get(key)
        if token is None or token.expires_at <= time.monotonic():
            token = self._fetch_token(host, domain, challenge, key[1])
            with self._lock:
                self._tokens[key] = token
        return f"Bearer {token.value}"

    def add_challenge(self, host: str, response: requests.Response) -> bool:
        """Learn from a 401; returns False when no supported challenge was offered."""
        supported = [
            c
            for c in parse_challenges(response.headers.get("WWW-Authenticate", ""))
            if c.scheme in ("basic", "bearer")
        ]
        if not supported:
            return False
        # Prefer bearer: it is what registries that offer both expect clients to use.
        chosen = next((c for c in supported if c.scheme == "bearer"), supported[0])
        with self._lock:
            self._challenges[host] = chosen
            for key in [k for k in self._tokens if k[0] == host]:
                del self._tokens[key]
        return True

    def has_credentials(self, domain: str) -> bool:
        return self._lookup_credentials(domain) is not None

    def _fetch_token(
        self, host: str, domain: str, challenge: Challenge, scopes: tuple[str, ...]
    ) -> _Token:
        realm = challenge.params.get("realm")
        if not realm:
            raise Unauthenticated(f"{host} sent a bearer challenge without a realm; cannot log in")
        params: list[tuple[str, str]] = []
        if service := challenge.params.get("service"):
            params.append(("service", service))
        params += [("scope", scope) for scope in scopes]
        headers = {"User-Agent": self._user_agent}
        creds = self._lookup_credentials(domain)
        if creds:
            headers["Authorization"] = basic_header(*creds)
        scheme = realm.partition(":")[0]
        try:
            response = self._session.get(
                realm, params=params, headers=headers, timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise error_for_connection(exc, realm, scheme) from exc
        with response:
            if response.status_code != 200:
                raise error_for_status(response, f"token for {', '.join(scopes)}", host)
            try:
                body = response.json()
            except ValueError as exc:
                raise Unauthenticated(f"token server {realm} answered with invalid JSON") from exc
        value = body.get("token") or body.get("access_token")
        if not value:
            raise Unauthenticated(f"token server {realm} answered without a token")
        lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        return _Token(value, time.monotonic() + max(lifetime - _EXPIRY_MARGIN, 1.0))


def _merge_scopes(challenge: Challenge, scopes: Iterable[str]) -> tuple[str, ...]:
    """Our own scopes; the challenge's scope only when we asked for none."""
    wanted = set(scopes)
    if not wanted and (challenge_scope := challenge.params.get("scope")):
        wanted.update(challenge_scope.split(" "))
    return tuple(sorted(wanted))
