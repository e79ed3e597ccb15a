"""Crash safety: a killed writer process, and every state an interrupted commit leaves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pycontainerd
from pycontainerd.content import LocalContentStore
from pycontainerd.digest import digest_of_bytes
from pycontainerd.errdefs import AlreadyExists, FailedPrecondition, Unavailable

CHUNK = 64 * 1024
DATA = b"".join(i.to_bytes(4, "big") * (CHUNK // 4) for i in range(256))  # 16 MiB

# The child writes DATA slowly so that the parent can kill it mid-stream.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pycontainerd.content import LocalContentStore
    CHUNK = 64 * 1024
    DATA = b"".join(i.to_bytes(4, "big") * (CHUNK // 4) for i in range(256))
    writer = LocalContentStore(Path(sys.argv[1])).writer("crashy", total=len(DATA))
    print("locked", flush=True)
    for start in range(0, len(DATA), CHUNK):
        writer.write(DATA[start : start + CHUNK])
        time.sleep(0.002)
    print("done", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def writer_child(store: LocalContentStore) -> Iterator[subprocess.Popen[str]]:
    repo_root = Path(pycontainerd.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store.root)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


def _wait_for_offset(store: LocalContentStore, minimum: int) -> None:
    deadline = time.monotonic() + 20
    while store.status("crashy").offset < minimum:
        assert time.monotonic() < deadline, "child made no progress"
        time.sleep(0.01)


def test_killed_writer_resumes_in_another_process(
    store: LocalContentStore, writer_child: subprocess.Popen[str]
) -> None:
    _wait_for_offset(store, 2 * CHUNK)
    with pytest.raises(Unavailable, match="another process"):
        store.writer("crashy")
    writer_child.send_signal(signal.SIGKILL)
    writer_child.wait(timeout=10)
    assert list(store.walk()) == [], "partial data must never reach blobs/"

    with store.writer("crashy", total=len(DATA)) as writer:
        offset = writer.offset
        assert 2 * CHUNK <= offset < len(DATA)
        assert writer.digest() == digest_of_bytes(DATA[:offset])
        writer.write_at(offset, DATA[offset:])
        digest = writer.commit(len(DATA), digest_of_bytes(DATA))
    assert store.info(digest).size == len(DATA)
    assert store.list_statuses() == []


def test_crash_after_publish_before_cleanup(store: LocalContentStore) -> None:
    """The data was renamed into blobs/ but the ingest directory survived."""
    data = b"published"
    with store.writer("half-done", total=len(data)) as writer:
        writer.write(data)
    ingest = store.root / "ingest" / os.listdir(store.root / "ingest")[0]
    target = store.root / "blobs" / "sha256" / digest_of_bytes(data).split(":")[1]
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(ingest / "data", target)

    assert store.status("half-done").offset == 0
    with pytest.raises(AlreadyExists):
        store.writer("half-done", expected=digest_of_bytes(data))
    with store.writer("half-done") as writer:
        assert writer.offset == 0
        writer.write(data)
        with pytest.raises(AlreadyExists):
            writer.commit()
    assert store.list_statuses() == []


def test_crash_after_read_only_bit_before_publish(store: LocalContentStore) -> None:
    with store.writer("chmodded") as writer:
        writer.write(b"abc")
    data_file = store.root / "ingest" / os.listdir(store.root / "ingest")[0] / "data"
    data_file.chmod(0o444)
    with store.writer("chmodded") as writer:
        writer.write(b"def")
        digest = writer.commit(6)
    assert store.blob_path(digest).read_bytes() == b"abcdef"


def test_crash_during_ingest_creation_leaves_no_visible_ingest(
    store: LocalContentStore,
) -> None:
    staging = store.root / "ingest" / ".tmp-0123456789abcdef"
    staging.mkdir()
    (staging / "ref").write_text("never-finished")
    assert store.list_statuses() == []
    assert store.disk_usage().ingest_count == 0


def test_corrupt_ingest_is_restarted_by_a_new_writer(store: LocalContentStore) -> None:
    with store.writer("damaged") as writer:
        writer.write(b"abc")
    ingest = store.root / "ingest" / os.listdir(store.root / "ingest")[0]
    (ingest / "startedat").write_text("not a time")
    assert store.list_statuses() == []
    with store.writer("damaged") as writer:
        assert writer.offset == 0
        writer.write(b"fresh")
    assert store.status("damaged").offset == 5


def test_an_ingest_a_machine_crash_left_empty_is_started_over(store: LocalContentStore) -> None:
    """Ingest metadata is written unsynced (as containerd's): after a power loss its
    files may be empty. Such an ingest says it is corrupt, and its next writer starts
    it over."""
    with store.writer("unsynced", total=10) as writer:
        writer.write(b"abc")
    ingest = store.root / "ingest" / os.listdir(store.root / "ingest")[0]
    (ingest / "ref").write_bytes(b"")
    assert store.list_statuses() == []
    with pytest.raises(FailedPrecondition, match="ref file is empty"):
        store.status("unsynced")
    for entry in ingest.iterdir():
        entry.write_bytes(b"")
    with pytest.raises(FailedPrecondition, match="corrupt"):
        store.status("unsynced")
    with store.writer("unsynced") as writer:
        assert writer.offset == 0
        writer.write(b"fresh")
    assert store.status("unsynced").offset == 5
