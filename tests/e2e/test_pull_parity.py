"""pyctr's pull-and-unpack leaves exactly what the real ctr's pull leaves."""

from __future__ import annotations

import json

import pytest

from tests.support.images import push_multilayer
from tests.support.pyctr import Pyctr, content_labels
from tests.support.registry import TestRegistry

pytestmark = pytest.mark.e2e
USER, SECRET = "parity", "s3cret"


def _snapshots(ctr, namespace: str) -> dict[str, tuple[str, str]]:
    """name -> (parent, kind) of ``ctr snapshots ls``."""
    rows = ctr.ok("snapshots", "ls", namespace=namespace).splitlines()[1:]
    result = {}
    for row in rows:
        fields = row.split()
        parent = fields[1] if len(fields) == 3 else ""
        result[fields[0]] = (parent, fields[-1])
    return result


def _pyctr(daemon, *args: str, namespace: str) -> None:
    Pyctr(daemon.address, namespace).ok(*args, timeout=300)


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_same_chain_and_labels_as_ctr_pull(ctr, daemon, registry, compression):
    pushed = push_multilayer(registry, repo=f"parity/{compression}", compression=compression)
    ctr.ok("images", "pull", "--plain-http", pushed.ref, namespace="by-ctr")
    _pyctr(daemon, "images", "pull", "--plain-http", pushed.ref, namespace="by-pyctr")
    assert _snapshots(ctr, "by-pyctr") == _snapshots(ctr, "by-ctr")
    assert content_labels(ctr, "by-pyctr") == content_labels(ctr, "by-ctr")
    for namespace in ("by-ctr", "by-pyctr"):
        line = next(
            ln
            for ln in ctr.ok("images", "check", namespace=namespace).splitlines()
            if ln.startswith(pushed.ref)
        )
        assert " complete " in line
    # Each sees the other's image as its own: ctr mounts what pyctr pulled.
    info = json.loads(ctr.ok("snapshots", "info", _top(ctr, "by-pyctr"), namespace="by-pyctr"))
    assert info["Kind"] == "Committed"


def _top(ctr, namespace: str) -> str:
    snapshots = _snapshots(ctr, namespace)
    parents = {parent for parent, _ in snapshots.values()}
    [top] = [name for name in snapshots if name not in parents]
    return top


def test_ctr_pull_from_a_registry_with_basic_auth(ctr):
    with TestRegistry(users={USER: SECRET}) as private:
        pushed = push_multilayer(private, repo="parity/private")  # pushes as USER
        err = ctr.fails("images", "pull", "--plain-http", pushed.ref)
        assert "401" in err or "unauthorized" in err.lower()
        ctr.ok("images", "pull", "--plain-http", "--user", f"{USER}:{SECRET}", pushed.ref)
        assert pushed.ref in ctr.ok("images", "ls", "-q")


def test_all_platforms_unpacks_every_platform_like_ctr(ctr, daemon, registry):
    from tests.support.images import push_multiplatform

    pushed = push_multiplatform(registry, repo="parity/multi")
    ctr.ok("images", "pull", "--plain-http", "--all-platforms", pushed.ref, namespace="all-ctr")
    _pyctr(
        daemon,
        "images",
        "pull",
        "--plain-http",
        "--all-platforms",
        pushed.ref,
        namespace="all-pyctr",
    )
    ours, theirs = _snapshots(ctr, "all-pyctr"), _snapshots(ctr, "all-ctr")
    assert ours == theirs
    # The foreign image is busybox plus one layer: its chain extends the host's.
    assert len(ours) == 2
