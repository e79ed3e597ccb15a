"""Wire identity of our CRI proto (runtime.v1) with the pinned k8s.io/cri-api.

Upstream's api.proto comes from the Go module cache, where scripts/go-tools.sh
(the ``cri-api`` line of scripts/go-tools.txt, run by ``scripts/install.sh
--test``) downloads it. Both files are compiled and compared definition by
definition with test_proto_compat's comparison.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_proto_compat import (
    OUR_PROTO_ROOT,
    _compare_names,
    assert_no_differences,
    compile_descriptor_set,
    diff_file_against,
    index_definitions,
    our_proto_files,
)

GO_TOOLS = Path(__file__).resolve().parents[2] / "scripts" / "go-tools.txt"
OUR_FILE = "pycontainerd/api/cri/runtime/v1/api.proto"
UPSTREAM_RELATIVE = Path("pkg/apis/runtime/v1/api.proto")


def pinned_cri_api() -> str:
    """The cri-api version scripts/go-tools.txt pins."""
    match = re.search(r"^cri-api\s+k8s\.io/cri-api@(\S+)", GO_TOOLS.read_text(), re.M)
    assert match, "scripts/go-tools.txt pins no cri-api"
    return match.group(1)


def upstream_api_proto() -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is not on PATH; the CRI proto test reads cri-api from Go's module cache")
    modcache = subprocess.run(
        [go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = Path(modcache) / f"k8s.io/cri-api@{pinned_cri_api()}" / UPSTREAM_RELATIVE
    if not path.exists():
        pytest.fail(f"{path} is missing; run `scripts/go-tools.sh cri-api`")
    return path


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    path = upstream_api_proto()
    out = tmp_path_factory.mktemp("cri-upstream") / "up.pb"
    (proto,) = compile_descriptor_set([path.parent], [path.name], out).file
    return proto


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    out = tmp_path_factory.mktemp("cri-ours") / "ours.pb"
    return list(compile_descriptor_set([OUR_PROTO_ROOT], our_proto_files(), out).file)


def test_our_cri_file_exists_and_is_package_runtime_v1(ours):
    (mine,) = [f for f in ours if f.name == OUR_FILE]
    assert mine.package == "runtime.v1"
    assert {s.name for s in mine.service} == {"RuntimeService", "ImageService"}


def test_cri_proto_is_wire_identical_to_upstream(upstream, ours):
    assert_no_differences(diff_file_against(upstream, index_definitions(ours)))


def test_no_extra_definitions_in_runtime_v1(upstream, ours):
    theirs = index_definitions([upstream])
    mine = index_definitions(ours)
    assert_no_differences(
        _compare_names(
            "runtime.v1",
            "definition",
            theirs.names_in_package("runtime.v1"),
            mine.names_in_package("runtime.v1"),
        )
    )
