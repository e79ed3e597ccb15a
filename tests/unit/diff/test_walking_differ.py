"""The walking differ over a real content store, with real bind and overlay mounts (root)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd import errdefs, mount
from pycontainerd.content.store import LocalContentStore
from pycontainerd.diff import UNCOMPRESSED_LABEL, CompareOptions, WalkingDiffer
from pycontainerd.diff import compare as compare_module
from pycontainerd.metadata.db import Database
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.mount import Mount
from pycontainerd.remotes.manifest import Descriptor
from tests.support import layers as L

NS = "testing"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = LAYER_TAR + "+gzip"
LAYER_ZSTD = LAYER_TAR + "+zstd"

BASE = [
    L.directory("etc"),
    L.file("etc/hostname", "base\n"),
    L.file("etc/removed", "soon gone\n"),
    L.directory("opaque"),
    L.file("opaque/old", "old\n"),
    L.symlink("etc/link", "hostname"),
]
CHANGES = [
    L.whiteout("etc/removed"),
    L.file("etc/hostname", "changed\n"),
    L.opaque("opaque"),
    L.file("opaque/new", "new\n"),
    L.directory("added", mode=0o750, uid=1000, gid=1000),
    L.file("added/file", "added\n", uid=1000, gid=1000),
    L.hardlink("added/hard", "added/file"),
]


@pytest.fixture
def metadata(tmp_path: Path) -> Iterator[MetadataStore]:
    store = MetadataStore(Database(tmp_path / "meta.db"), LocalContentStore(tmp_path / "content"))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def differ(metadata: MetadataStore, tmp_path: Path) -> Iterator[WalkingDiffer]:
    walking = WalkingDiffer(metadata.content, tmp_path / "tmpmounts")
    try:
        yield walking
    finally:
        mount.unmount_all(str(tmp_path), flags=mount.MNT_DETACH)
        assert os.listdir(walking.temp_root) == [], "a temporary mount was left behind"


def put_blob(metadata: MetadataStore, data: bytes, namespace: str = NS) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with contextlib.suppress(errdefs.NotFound):
        return metadata.content.info(namespace, digest).digest
    writer = metadata.content.writer(namespace, f"put-{digest}")
    try:
        writer.inner.write(data)
        return writer.commit(len(data), digest, {})
    finally:
        writer.close()


def layer(metadata: MetadataStore, entries: list[L.TarEntry], compression: str = "gzip"):  # type: ignore[no-untyped-def]
    """Store a layer blob; returns its descriptor and its diff ID."""
    tar = L.tar_bytes(entries)
    blob = L.compress(tar, compression)
    media_type = {"gzip": LAYER_GZIP, "zstd": LAYER_ZSTD, "none": LAYER_TAR}[compression]
    digest = put_blob(metadata, blob)
    return Descriptor(media_type, digest, len(blob)), "sha256:" + hashlib.sha256(tar).hexdigest()


def bind(path: Path, mode: str = "rw") -> list[Mount]:
    return [Mount("bind", str(path), options=[mode, "rbind"])]


def overlay(lower: Path, upper: Path, work: Path) -> list[Mount]:
    options = [f"workdir={work}", f"upperdir={upper}", f"lowerdir={lower}"]
    return [Mount("overlay", "overlay", options=options)]


def make_dirs(tmp_path: Path, *names: str) -> list[Path]:
    paths = [tmp_path / name for name in names]
    for path in paths:
        path.mkdir()
    return paths


def describe(root: Path) -> dict[str, tuple]:
    """Type, mode, owner and content (or link target) of everything under ``root``."""
    tree: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                payload: object = Path(path).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                payload = os.readlink(path)
            else:
                payload = None
            rel = os.path.relpath(path, root)
            tree[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, payload)
    return tree


@contextlib.contextmanager
def mounted(mounts: list[Mount], target: Path) -> Iterator[Path]:
    target.mkdir(exist_ok=True)
    mount.mount_all(mounts, str(target))
    try:
        yield target
    finally:
        mount.unmount_all(str(target), flags=mount.MNT_DETACH)


# -- apply -----------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_apply_onto_a_bind_mount_returns_the_uncompressed_layer(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path, compression: str
) -> None:
    (target,) = make_dirs(tmp_path, "target")
    desc, diff_id = layer(metadata, BASE, compression)

    applied = differ.apply(NS, desc, bind(target))

    assert applied.media_type == LAYER_TAR
    assert applied.digest == diff_id
    assert applied.size == len(L.tar_bytes(BASE))
    assert (target / "etc/hostname").read_text() == "base\n"
    assert os.readlink(target / "etc/link") == "hostname"


def test_apply_onto_a_bind_mount_deletes_whiteouts(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path
) -> None:
    (target,) = make_dirs(tmp_path, "target")
    differ.apply(NS, layer(metadata, BASE)[0], bind(target))
    differ.apply(NS, layer(metadata, CHANGES)[0], bind(target))

    assert not (target / "etc/removed").exists()
    assert sorted(os.listdir(target / "opaque")) == ["new"]
    assert (target / "added/hard").stat().st_ino == (target / "added/file").stat().st_ino


def test_apply_onto_an_overlay_writes_its_upper_dir_directly(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path
) -> None:
    lower, upper, work = make_dirs(tmp_path, "lower", "upper", "work")
    differ.apply(NS, layer(metadata, BASE)[0], bind(lower))

    differ.apply(NS, layer(metadata, CHANGES)[0], overlay(lower, upper, work))

    whiteout = os.lstat(upper / "etc/removed")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
    assert os.getxattr(upper / "opaque", "trusted.overlay.opaque") == b"y"
    assert not (upper / "etc/link").exists(), "the lower layer was copied up"
    with mounted(overlay(lower, upper, work), tmp_path / "merged") as merged:
        assert not (merged / "etc/removed").exists()
        assert sorted(os.listdir(merged / "opaque")) == ["new"]
        assert (merged / "etc/hostname").read_text() == "changed\n"


def test_apply_refuses_a_media_type_that_is_not_a_layer(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path
) -> None:
    (target,) = make_dirs(tmp_path, "target")
    desc, _ = layer(metadata, BASE)
    config = Descriptor("application/vnd.oci.image.config.v1+json", desc.digest, desc.size)
    encrypted = Descriptor(LAYER_GZIP + "+encrypted", desc.digest, desc.size)

    for unsupported in (config, encrypted):
        with pytest.raises(errdefs.NotImplemented_, match="media type"):
            differ.apply(NS, unsupported, bind(target))
    assert os.listdir(target) == []


def test_apply_of_a_truncated_layer_is_invalid(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path
) -> None:
    (target,) = make_dirs(tmp_path, "target")
    blob = gzip.compress(L.tar_bytes(BASE), mtime=0)
    cut = blob[: len(blob) // 2]
    desc = Descriptor(LAYER_GZIP, put_blob(metadata, cut), len(cut))

    with pytest.raises(errdefs.InvalidArgument, match="truncated|corrupt"):
        differ.apply(NS, desc, bind(target))


def test_apply_of_corrupt_bytes_is_invalid(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path
) -> None:
    (target,) = make_dirs(tmp_path, "target")
    blob = bytearray(gzip.compress(L.tar_bytes(BASE), mtime=0))
    blob[len(blob) // 2 :] = bytes(len(blob) - len(blob) // 2)
    desc = Descriptor(LAYER_GZIP, put_blob(metadata, bytes(blob)), len(blob))

    with pytest.raises(errdefs.InvalidArgument):
        differ.apply(NS, desc, bind(target))


def test_apply_needs_the_blob_in_the_callers_namespace(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path
) -> None:
    (target,) = make_dirs(tmp_path, "target")
    desc, _ = layer(metadata, BASE)

    with pytest.raises(errdefs.NotFound, match="other"):
        differ.apply("other", desc, bind(target))


def test_apply_needs_mounts(differ: WalkingDiffer, metadata: MetadataStore) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="mounts"):
        differ.apply(NS, layer(metadata, BASE)[0], [])


# -- compare ---------------------------------------------------------------------------------


def apply_and_describe(
    differ: WalkingDiffer, tmp_path: Path, base: Path, desc: Descriptor
) -> dict[str, tuple]:
    """The tree ``desc`` gives when applied to a copy of ``base``."""
    copy = tmp_path / "replayed"
    shutil.copytree(base, copy, symlinks=True)
    differ.apply(NS, desc, bind(copy))
    return describe(copy)


@pytest.mark.parametrize("media_type", ["", LAYER_GZIP, LAYER_ZSTD, LAYER_TAR])
def test_compare_two_trees_stores_a_layer_that_replays_the_change(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path, media_type: str
) -> None:
    lower, upper = make_dirs(tmp_path, "lower", "upper")
    differ.apply(NS, layer(metadata, BASE)[0], bind(lower))
    differ.apply(NS, layer(metadata, BASE)[0], bind(upper))
    differ.apply(NS, layer(metadata, CHANGES)[0], bind(upper))

    desc = differ.compare(
        NS, bind(lower), bind(upper), CompareOptions(media_type=media_type, labels={"a": "b"})
    )

    assert desc.media_type == (media_type or LAYER_GZIP)
    info = metadata.content.info(NS, desc.digest)
    assert info.size == desc.size
    assert info.labels["a"] == "b"
    assert info.labels[UNCOMPRESSED_LABEL].startswith("sha256:")
    assert apply_and_describe(differ, tmp_path, lower, desc) == describe(upper)
    assert metadata.content.list_statuses(NS) == []


def test_compare_reads_an_overlay_upper_dir_when_the_lower_tree_is_its_parent(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    lower, upper, work = make_dirs(tmp_path, "lower", "upper", "work")
    differ.apply(NS, layer(metadata, BASE)[0], bind(lower))
    differ.apply(NS, layer(metadata, CHANGES)[0], overlay(lower, upper, work))

    def no_walking(*args: object, **kwargs: object) -> None:
        raise AssertionError("compared the trees although the upper dir holds the changes")

    monkeypatch.setattr(compare_module, "write_diff", no_walking)
    desc = differ.compare(NS, bind(lower, "ro"), overlay(lower, upper, work))

    with mounted(overlay(lower, upper, work), tmp_path / "merged") as merged:
        expected = describe(merged)
    assert apply_and_describe(differ, tmp_path, lower, desc) == expected


def test_compare_walks_when_the_overlay_sits_on_another_tree(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path
) -> None:
    lower, other, upper, work = make_dirs(tmp_path, "lower", "other", "upper", "work")
    differ.apply(NS, layer(metadata, BASE)[0], bind(lower))
    differ.apply(NS, layer(metadata, CHANGES)[0], overlay(lower, upper, work))

    desc = differ.compare(NS, bind(other), overlay(lower, upper, work))

    with mounted(overlay(lower, upper, work), tmp_path / "merged") as merged:
        expected = describe(merged)
    assert apply_and_describe(differ, tmp_path, other, desc) == expected


def test_compare_of_a_layer_the_namespace_has_returns_it(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path
) -> None:
    lower, upper = make_dirs(tmp_path, "lower", "upper")
    differ.apply(NS, layer(metadata, BASE)[0], bind(upper))

    first = differ.compare(NS, bind(lower), bind(upper))
    again = differ.compare(NS, bind(lower), bind(upper), CompareOptions(ref="named"))

    assert again == first
    assert metadata.content.list_statuses(NS) == []


def test_compare_adds_its_blob_to_the_lease(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path
) -> None:
    lower, upper = make_dirs(tmp_path, "lower", "upper")
    differ.apply(NS, layer(metadata, BASE)[0], bind(upper))
    metadata.leases.create(NS, "diff-lease", {})

    desc = differ.compare(NS, bind(lower), bind(upper), CompareOptions(lease="diff-lease"))

    resources = metadata.leases.list_resources(NS, "diff-lease")
    assert (desc.digest, "content") in [(r.id, r.type) for r in resources]


def test_failed_compare_leaves_no_write_behind(
    differ: WalkingDiffer, metadata: MetadataStore, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    lower, upper = make_dirs(tmp_path, "lower", "upper")

    def failing(*args: object, **kwargs: object) -> None:
        raise errdefs.InvalidArgument("cannot read the tree")

    monkeypatch.setattr(compare_module, "write_diff", failing)
    with pytest.raises(errdefs.InvalidArgument, match="cannot read"):
        differ.compare(NS, bind(lower), bind(upper))
    assert metadata.content.list_statuses(NS) == []
    assert metadata.content.list(NS) == []


def test_compare_refuses_media_types_it_cannot_write(differ: WalkingDiffer, tmp_path: Path) -> None:
    lower, upper = make_dirs(tmp_path, "lower", "upper")
    with pytest.raises(errdefs.NotImplemented_):
        differ.compare(NS, bind(lower), bind(upper), CompareOptions(media_type="text/plain"))


def test_cleanup_unmounts_what_a_crash_left(differ: WalkingDiffer, tmp_path: Path) -> None:
    (source,) = make_dirs(tmp_path, "source")
    (source / "marker").write_text("x")
    left = differ.temp_root / "pycontainerd-mount-crashed"
    left.mkdir()
    mount.mount_all(bind(source), str(left))

    assert differ.cleanup() == [str(left)]
    assert not left.exists()
    assert (source / "marker").exists()
