"""The real ctr fetching, tagging, importing and exporting images through pycontainerd."""

from __future__ import annotations

import hashlib
import tarfile

import pytest

from tests.support.images import busybox_image, write_oci_archive

pytestmark = pytest.mark.e2e


def _blob_dir(daemon):
    return daemon.root / "io.containerd.content.v1.content" / "blobs" / "sha256"


def test_fetch_tag_rm_and_gc(ctr, daemon, busybox_pushed):
    ref = busybox_pushed.ref
    ctr.ok("content", "fetch", "--plain-http", ref)
    images = ctr.ok("images", "ls")
    assert ref in images
    assert busybox_pushed.descriptor.digest in images
    content = ctr.ok("content", "ls")
    wanted = [
        busybox_pushed.manifest_digest,
        busybox_pushed.config_digest,
        *busybox_pushed.layer_digests,
    ]
    for digest in wanted:
        assert digest in content
        assert (_blob_dir(daemon) / digest.split(":")[1]).exists()
    # The manifest carries containerd's gc reference labels to its children.
    manifest_line = next(
        ln for ln in content.splitlines() if ln.startswith(busybox_pushed.manifest_digest)
    )
    assert f"containerd.io/gc.ref.content.config={busybox_pushed.config_digest}" in manifest_line

    ctr.ok("images", "tag", ref, "example.test/copy:1")
    assert "example.test/copy:1" in ctr.ok("images", "ls", "-q")
    ctr.ok("images", "rm", "--sync", ref)
    listing = ctr.ok("images", "ls", "-q")
    assert ref not in listing and "example.test/copy:1" in listing
    for digest in wanted:  # still referenced by the tag
        assert (_blob_dir(daemon) / digest.split(":")[1]).exists()
    ctr.ok("images", "rm", "--sync", "example.test/copy:1")
    assert ctr.ok("images", "ls", "-q").strip() == ""
    for digest in wanted:
        assert not (_blob_dir(daemon) / digest.split(":")[1]).exists(), f"{digest} left on disk"
    assert ctr.ok("content", "ls").strip().splitlines()[1:] == []


def test_image_filters_and_labels(ctr, busybox_pushed):
    ref = busybox_pushed.ref
    ctr.ok("content", "fetch", "--plain-http", ref)
    ctr.ok("images", "label", ref, "stage=test")
    assert ref in ctr.ok("images", "ls", "-q", "labels.stage==test")
    assert ctr.ok("images", "ls", "-q", "labels.stage==prod").strip() == ""
    assert ref in ctr.ok("images", "ls", "-q", f"name~={ref.split('/')[0]}")


def _blobs_of(archive) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {
            m.name: tar.extractfile(m).read()
            for m in tar.getmembers()
            if m.isfile() and m.name.startswith("blobs/")
        }


def test_import_no_unpack_then_export_is_byte_identical(ctr, tmp_path):
    image = busybox_image("oci", "gzip")
    name = "docker.io/library/busybox-import:1.0"
    archive = tmp_path / "in.tar"
    write_oci_archive(archive, image, name)
    ctr.ok("images", "import", "--no-unpack", str(archive))
    assert name in ctr.ok("images", "ls", "-q")
    exported = tmp_path / "out.tar"
    ctr.ok("images", "export", str(exported), name)
    before, after = _blobs_of(archive), _blobs_of(exported)
    assert before.keys() <= after.keys()
    for path, data in before.items():
        assert after[path] == data
        assert hashlib.sha256(data).hexdigest() == path.rsplit("/", 1)[1]
