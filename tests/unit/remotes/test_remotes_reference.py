from __future__ import annotations

import pytest

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.remotes.reference import familiar_name, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x"),
        ("user/app", "docker.io/user/app:latest"),
        ("quay.io/coreos/etcd:v3", "quay.io/coreos/etcd:v3"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:1", "localhost:5000/app:1"),
        ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c:latest"),
        ("Registry.Example.com/x", "Registry.Example.com/x:latest"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
        (f"host:5000/repo:tag@{DIGEST}", f"host:5000/repo:tag@{DIGEST}"),
        ("a-b__c_d/f---g", "docker.io/a-b__c_d/f---g:latest"),
        ("my-reg.example.com/f.g", "my-reg.example.com/f.g:latest"),
    ],
)
def test_parse_normalizes_like_docker(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


def test_parts_of_a_reference() -> None:
    ref = parse_reference(f"127.0.0.1:5000/team/app:v1@{DIGEST}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (
        "127.0.0.1:5000",
        "team/app",
        "v1",
        DIGEST,
    )
    assert ref.name == "127.0.0.1:5000/team/app"
    assert ref.object == DIGEST
    assert parse_reference("busybox").object == "latest"


def test_without_default_tag() -> None:
    assert parse_reference("busybox", default_tag=False).tag == ""


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("Busybox", "lowercase"),
        ("busybox:", "expected"),
        ("busybox:tag with space", "expected"),
        ("-busybox", "expected"),
        ("busybox@sha256:1234", "expected"),
        ("busybox@sha256:" + "g" * 64, "expected"),
        ("busybox@md5:" + "a" * 32, "unsupported"),
        ("a" * 64, "image ID"),
        ("host:port/repo", "expected"),
        ("repo//double", "expected"),
        ("bad_host.example.com/repo", "bad registry host"),
        ("x/" + "a" * 260, "longer than 255"),
    ],
)
def test_invalid_references_are_rejected_with_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        parse_reference(text)


def test_with_tag_and_digest() -> None:
    ref = parse_reference("busybox")
    assert str(ref.with_tag("1.0")) == "docker.io/library/busybox:1.0"
    assert str(ref.with_digest(DIGEST)).endswith(f":latest@{DIGEST}")
    with pytest.raises(InvalidArgument):
        ref.with_tag("bad tag")


@pytest.mark.parametrize(
    ("text", "familiar"),
    [
        ("busybox", "busybox:latest"),
        ("user/app:1", "user/app:1"),
        ("quay.io/a/b:c", "quay.io/a/b:c"),
    ],
)
def test_familiar_name(text: str, familiar: str) -> None:
    assert familiar_name(parse_reference(text)) == familiar
