"""Authentication: basic (real registry with htpasswd), bearer (in-test fake), config file."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pycontainerd.errdefs import Code, Unavailable
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.auth import Challenge, parse_challenges
from pycontainerd.remotes.dockerconfig import (
    docker_config_credentials,
    load_docker_auths,
    normalize_registry_key,
)
from pycontainerd.remotes.errors import Unauthenticated
from pycontainerd.remotes.fetcher import read_all
from pycontainerd.remotes.resolver import Resolver
from pycontainerd.remotes.transport import Transport
from tests.support import images
from tests.support.fake_registry import FakeRegistry, FakeRegistryState
from tests.support.registry import TestRegistry, free_port

FAKE_USER, FAKE_SECRET = "bob", "builder"  # accepted by the in-test token server


def test_parse_challenges() -> None:
    header = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:a/b:pull,push", Basic realm="x \\"quoted\\""'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.example.com/token",
                "service": "registry.example.com",
                "scope": "repository:a/b:pull,push",
            },
        ),
        Challenge("basic", {"realm": 'x "quoted"'}),
    ]
    assert parse_challenges("") == []


def test_basic_auth_good_and_bad_credentials(
    auth_registry: TestRegistry, auth_credentials: tuple[str, str]
) -> None:
    user, secret = auth_credentials
    pushed = images.push_busybox(auth_registry, repo="private/busybox")
    with auth_registry.resolver(lambda host: (user, secret)) as resolver:
        assert resolver.resolve(pushed.ref)[1].digest == pushed.manifest_digest
    with auth_registry.resolver(lambda host: (user, "wrong")) as resolver:
        with pytest.raises(Unauthenticated, match="docker login") as caught:
            resolver.resolve(pushed.ref)
        assert caught.value.code == Code.UNAUTHENTICATED
    with auth_registry.resolver() as resolver, pytest.raises(Unauthenticated, match="--user"):
        resolver.resolve(pushed.ref)


def _write_docker_config(directory: Path, auths: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps({"auths": auths}))
    return path


def test_docker_config_credentials(
    auth_registry: TestRegistry,
    auth_credentials: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pushed = images.push_busybox(auth_registry, repo="private/fromconfig")
    token = base64.b64encode(":".join(auth_credentials).encode()).decode()
    _write_docker_config(
        tmp_path / "dockercfg", {f"http://{auth_registry.host}/v2/": {"auth": token}}
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockercfg"))
    with auth_registry.resolver(docker_config_credentials()) as resolver:
        assert resolver.resolve(pushed.ref)[1].digest == pushed.manifest_digest


def test_docker_config_parsing(tmp_path: Path) -> None:
    path = _write_docker_config(
        tmp_path,
        {
            "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
            "quay.io": {"username": "q", "password": "p"},
            "ghcr.io": {"identitytoken": "tok"},
            "empty.example.com": {},
        },
    )
    assert load_docker_auths(path) == {
        "docker.io": ("hub", "pw"),
        "quay.io": ("q", "p"),
        "ghcr.io": ("", "tok"),
    }
    lookup = docker_config_credentials(path)
    assert lookup("registry-1.docker.io") == ("hub", "pw")
    assert lookup("unknown.example.com") is None
    assert load_docker_auths(tmp_path / "missing.json") == {}
    assert normalize_registry_key("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"


def _fake_with_manifest(state: FakeRegistryState) -> tuple[str, str]:
    config = b'{"architecture":"amd64","os":"linux"}'
    config_digest = state.add_blob(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {
                "mediaType": mediatypes.OCI_CONFIG,
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    return state.add_manifest(mediatypes.OCI_MANIFEST, manifest, tag="v1"), config_digest


def test_bearer_token_flow_caches_tokens_per_scope() -> None:
    state = FakeRegistryState(bearer=True, token_users={FAKE_USER: FAKE_SECRET})
    digest, _ = _fake_with_manifest(state)
    with FakeRegistry(state) as fake:
        ref = f"{fake.host}/team/app:v1"
        with Resolver(
            plain_http=True, credentials=lambda host: (FAKE_USER, FAKE_SECRET)
        ) as resolver:
            assert resolver.resolve(ref)[1].digest == digest
            assert resolver.resolve(ref)[1].digest == digest
            pusher_scope_resolve = resolver.pusher(ref)
            assert pusher_scope_resolve.exists(resolver.resolve(ref)[1])
        assert state.token_scopes == [
            ["repository:team/app:pull"],
            ["repository:team/app:pull,push"],
        ]
        authorized = [r for r in state.requests if r.path != "/token"]
        assert all(r.headers.get("Authorization", "").startswith("Bearer ") for r in authorized[1:])


def test_bearer_token_refused_without_good_credentials() -> None:
    state = FakeRegistryState(bearer=True, token_users={FAKE_USER: FAKE_SECRET})
    _fake_with_manifest(state)
    with FakeRegistry(state) as fake:
        ref = f"{fake.host}/team/app:v1"
        bad = Resolver(plain_http=True, credentials=lambda host: (FAKE_USER, "nope"))
        with bad, pytest.raises(Unauthenticated, match="docker login"):
            bad.resolve(ref)
        with Resolver(plain_http=True) as resolver, pytest.raises(Unauthenticated):
            resolver.resolve(ref)


def test_anonymous_bearer_tokens() -> None:
    state = FakeRegistryState(bearer=True)
    digest, config_digest = _fake_with_manifest(state)
    with FakeRegistry(state) as fake, Resolver(plain_http=True) as resolver:
        ref = f"{fake.host}/public/app:v1"
        name, desc = resolver.resolve(ref)
        assert desc.digest == digest
        manifest = json.loads(read_all(resolver.fetcher(name), desc))
        assert manifest["config"]["digest"] == config_digest


def test_connection_refused_is_unavailable_with_hint() -> None:
    host = f"127.0.0.1:{free_port()}"
    https = Resolver(plain_http=False, timeout=5)
    with https, pytest.raises(Unavailable, match=f"{host}.*--plain-http"):
        https.resolve(f"{host}/any/thing:latest")
    with Resolver(plain_http=True, timeout=5) as resolver:
        with pytest.raises(Unavailable, match=host) as caught:
            resolver.resolve(f"{host}/any/thing:latest")
        assert "--plain-http" not in str(caught.value)


def test_https_against_plain_http_registry_suggests_plain_http(registry: TestRegistry) -> None:
    https = Resolver(plain_http=False, timeout=5)
    with https, pytest.raises(Unavailable, match="--plain-http"):
        https.resolve(registry.ref("any/thing"))


def test_transport_builds_urls(registry: TestRegistry) -> None:
    with registry.resolver() as resolver:
        transport: Transport = resolver.fetcher(registry.ref("a/b"))._transport
        assert transport.url("/a/b/blobs/x") == f"http://{registry.host}/v2/a/b/blobs/x"
        assert (
            transport.url("/v2/a/b/blobs/uploads/u")
            == f"http://{registry.host}/v2/a/b/blobs/uploads/u"
        )
        assert transport.url("http://elsewhere/x") == "http://elsewhere/x"
