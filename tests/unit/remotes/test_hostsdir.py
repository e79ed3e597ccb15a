"""Registry host configuration from a hosts directory (containerd's certs.d layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.remotes.hostsdir import HostEndpoint, load_endpoint


def _write(root: Path, name: str, text: str) -> None:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "hosts.toml").write_text(text)


def test_a_host_entry_that_resolves_wins(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "registry.test:5000",
        'server = "https://registry.test:5000"\n'
        '[host."https://push-only.test"]\n  capabilities = ["push"]\n'
        '[host."http://127.0.0.1:5001"]\n  capabilities = ["pull", "resolve"]\n',
    )
    assert load_endpoint(tmp_path, "registry.test:5000") == HostEndpoint("127.0.0.1:5001", True)


def test_server_alone_and_the_default_directory(tmp_path: Path) -> None:
    _write(tmp_path, "a.test", 'server = "https://mirror.test"\n')
    _write(tmp_path, "_default", 'server = "http://fallback.test:80"\n')

    assert load_endpoint(tmp_path, "a.test") == HostEndpoint("mirror.test", False)
    assert load_endpoint(tmp_path, "b.test") == HostEndpoint("fallback.test:80", True)
    assert load_endpoint(tmp_path / "missing", "a.test") is None


def test_what_we_cannot_honour_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "tls.test", '[host."https://tls.test"]\n  ca = "/x.pem"\n')
    _write(tmp_path, "broken.test", "server = [\n")
    _write(tmp_path, "path.test", 'server = "https://mirror.test/some/path"\n')

    with pytest.raises(errdefs.NotImplemented_, match="ca"):
        load_endpoint(tmp_path, "tls.test")
    with pytest.raises(errdefs.InvalidArgument):
        load_endpoint(tmp_path, "broken.test")
    with pytest.raises(errdefs.NotImplemented_, match="path"):
        load_endpoint(tmp_path, "path.test")
