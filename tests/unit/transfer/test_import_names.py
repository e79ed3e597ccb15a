"""containerd's naming rules for a Transfer import's index entries."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pycontainerd.remotes.manifest import Descriptor
from pycontainerd.transfer.import_names import import_names

DIGEST = "sha256:" + "ab" * 32


@dataclass
class Ref:
    name: str
    is_prefix: bool = True
    allow_overwrite: bool = False
    add_digest: bool = False
    skip_named_digest: bool = False


def entry(**annotations: str) -> Descriptor:
    return Descriptor(
        "application/vnd.oci.image.manifest.v1+json", DIGEST, 10, annotations=annotations
    )


FULL = {"io.containerd.image.name": "docker.io/library/busybox:latest"}
TAG_ONLY = {"org.opencontainers.image.ref.name": "v1"}


@pytest.mark.parametrize(
    ("annotations", "refs", "expected"),
    [
        (TAG_ONLY, [Ref("import-1")], ["import-1:v1"]),
        (FULL, [Ref("import-1")], []),  # a full name outside the prefix, not overwriting
        (FULL, [Ref("import-1", allow_overwrite=True)], ["docker.io/library/busybox:latest"]),
        (FULL, [Ref("docker.io/library/busybox")], ["docker.io/library/busybox:latest"]),
        (FULL, [Ref("docker.io/library/bus")], []),  # not at a name boundary
        ({}, [Ref("import", add_digest=True)], [f"import@{DIGEST}"]),
        (TAG_ONLY, [Ref("i", add_digest=True)], ["i:v1", f"i@{DIGEST}"]),
        (TAG_ONLY, [Ref("i", add_digest=True, skip_named_digest=True)], ["i:v1"]),
        (TAG_ONLY, [Ref("example.com/complete:1", is_prefix=False)], []),
        # nerdctl load: a digest ref that skips named images, then a named prefix.
        (
            FULL,
            [
                Ref("import", allow_overwrite=True, add_digest=True, skip_named_digest=True),
                Ref("import-2026-12-03", allow_overwrite=True),
            ],
            ["docker.io/library/busybox:latest"],
        ),
    ],
)
def test_import_names(annotations: dict[str, str], refs: list[Ref], expected: list[str]):
    assert import_names(entry(**annotations), refs) == expected
