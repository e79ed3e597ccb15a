"""Ingests: resume, offsets, commit checks, locking, status, abort, GC."""

from __future__ import annotations

import os
import threading
from datetime import UTC, timedelta

import pytest

from pycontainerd.content import IngestWriter, LocalContentStore
from pycontainerd.content import ingest as ingest_module
from pycontainerd.content.ingest import ingest_dir_name
from pycontainerd.digest import digest_of_bytes
from pycontainerd.errdefs import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)

DATA = b"the quick brown fox jumps over the lazy dog" * 1000


def test_resume_after_close_continues_at_offset(store: LocalContentStore) -> None:
    with store.writer("resumable", total=len(DATA)) as writer:
        writer.write(DATA[:1234])
        started_at = writer.started_at
    status = store.status("resumable")
    assert (status.offset, status.total) == (1234, len(DATA))
    with store.writer("resumable") as writer:
        assert writer.offset == 1234
        assert writer.total == len(DATA)
        assert writer.started_at == started_at
        assert writer.digest() == digest_of_bytes(DATA[:1234])
        writer.write_at(1234, DATA[1234:])
        assert writer.commit(expected=digest_of_bytes(DATA)) == digest_of_bytes(DATA)


def test_wrong_digest_is_refused_and_nothing_committed(store: LocalContentStore) -> None:
    wrong = digest_of_bytes(b"something else")
    writer = store.writer("bad-digest")
    writer.write(DATA)
    with pytest.raises(FailedPrecondition) as caught:
        writer.commit(expected=wrong)
    assert wrong in str(caught.value) and digest_of_bytes(DATA) in str(caught.value)
    assert not store.exists(digest_of_bytes(DATA))
    assert store.status("bad-digest").offset == len(DATA)
    # The writer is still usable: start over and commit the right content.
    writer.write_at(0, b"something else")
    assert writer.commit(expected=wrong) == wrong
    assert list(store.walk())[0].digest == wrong


def test_wrong_size_is_refused(store: LocalContentStore) -> None:
    with store.writer("bad-size") as writer:
        writer.write(DATA)
        with pytest.raises(FailedPrecondition, match=f"{len(DATA)} bytes written, expected 5"):
            writer.commit(size=5)
    assert list(store.walk()) == []
    assert store.status("bad-size").offset == len(DATA)


def test_expectations_recorded_at_open_bind_the_commit(store: LocalContentStore) -> None:
    expected = digest_of_bytes(DATA)
    with store.writer("announced", total=len(DATA), expected=expected) as writer:
        writer.write(DATA[:10])
    with store.writer("announced") as writer:
        assert (writer.total, writer.expected) == (len(DATA), expected)
        writer.write(DATA[10:-1] + b"!")
        with pytest.raises(FailedPrecondition, match=expected):
            writer.commit()


def test_conflicting_expectations_on_resume(store: LocalContentStore) -> None:
    store.writer("conflict", total=10).close()
    with pytest.raises(FailedPrecondition, match="started with total 10"):
        store.writer("conflict", total=11)
    # The refused open released its lock.
    store.writer("conflict", total=10).close()


def test_total_given_later_is_recorded(store: LocalContentStore) -> None:
    store.writer("late").close()
    store.update_ingest_total("late", len(DATA), digest_of_bytes(DATA))
    status = store.status("late")
    assert (status.total, status.expected) == (len(DATA), digest_of_bytes(DATA))
    with store.writer("late") as writer:
        writer.set_expectations(total=3)
        assert writer.total == 3
    assert store.status("late").total == 3
    with pytest.raises(NotFound):
        store.update_ingest_total("nobody", 1)


def test_write_at_other_offsets_is_refused(store: LocalContentStore) -> None:
    with store.writer("offsets") as writer:
        writer.write(b"abc")
        with pytest.raises(InvalidArgument, match="ingest is at 3"):
            writer.write_at(2, b"x")
        writer.write_at(3, b"def")
        writer.write_at(0, b"xyz")
        assert writer.offset == 3
        assert writer.digest() == digest_of_bytes(b"xyz")
        with pytest.raises(InvalidArgument, match="only size 0"):
            writer.truncate(1)
        writer.truncate(0)
        assert (writer.offset, writer.digest()) == (0, digest_of_bytes(b""))
    assert store.status("offsets").offset == 0


def test_second_writer_for_same_ref_is_refused(store: LocalContentStore) -> None:
    first = store.writer("busy")
    with pytest.raises(Unavailable, match="ref 'busy' locked"):
        store.writer("busy")
    other_instance = LocalContentStore(store.root)
    with pytest.raises(Unavailable, match="locked"):
        other_instance.writer("busy")
    first.close()
    store.writer("busy").close()


def test_abort_cancels_an_active_writer(store: LocalContentStore) -> None:
    active = store.writer("cancelled")
    active.write(b"doomed")
    store.abort("cancelled")
    with pytest.raises(NotFound):
        store.status("cancelled")
    with pytest.raises(Aborted, match="aborted while in progress"):
        active.commit()
    assert active.closed
    assert list(store.walk()) == []
    with store.writer("cancelled") as fresh:
        assert fresh.offset == 0


def test_cancelled_writer_cannot_publish_a_newer_ingest(store: LocalContentStore) -> None:
    stale = store.writer("reused")
    stale.write(b"old bytes")
    store.abort("reused")
    # Another process starts the same ref again (it is not bound by our lock table).
    ingest_dir = store.root / "ingest" / ingest_dir_name("reused")
    ingest_dir.mkdir()
    (ingest_dir / "data").write_bytes(b"new bytes")
    with pytest.raises(Aborted):
        stale.commit()
    assert list(store.walk()) == []
    assert (ingest_dir / "data").read_bytes() == b"new bytes"


def test_closed_writer_refuses_work(store: LocalContentStore) -> None:
    writer = store.writer("closed")
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(FailedPrecondition, match="closed"):
        writer.write(b"x")
    with pytest.raises(FailedPrecondition, match="closed"):
        writer.commit()


def test_bad_writer_arguments(store: LocalContentStore) -> None:
    with pytest.raises(InvalidArgument, match="ref must not be empty"):
        store.writer("")
    with pytest.raises(InvalidArgument, match="only writes sha256"):
        store.writer("r", expected="sha512:" + "a" * 128)
    with pytest.raises(InvalidArgument, match="total"):
        store.writer("r", total=-1)
    assert store.list_statuses() == []


def test_status_list_and_abort(store: LocalContentStore) -> None:
    for ref in ("b", "a", "weird/ref with spaces:and:colons"):
        with store.writer(ref) as writer:
            writer.write(ref.encode())
    statuses = store.list_statuses()
    assert [s.ref for s in statuses] == sorted(["a", "b", "weird/ref with spaces:and:colons"])
    assert all(s.started_at.tzinfo is UTC and s.updated_at >= s.started_at for s in statuses)
    store.abort("a")
    with pytest.raises(NotFound, match="no ingest for ref 'a'"):
        store.status("a")
    with pytest.raises(NotFound):
        store.abort("a")
    assert [s.ref for s in store.list_statuses()] == ["b", "weird/ref with spaces:and:colons"]


def test_status_during_an_abort_is_whole_or_not_found(
    store: LocalContentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Status racing an abort never sees a half-deleted ingest as corrupt."""
    with store.writer("racing") as writer:
        writer.write(DATA)
    seen: list[str] = []
    real_rmtree = ingest_module.shutil.rmtree

    def rmtree_with_a_reader_in_between(path: str, **kwargs: object) -> None:
        for name in sorted(os.listdir(path)):  # delete file by file, as rmtree does
            os.unlink(os.path.join(path, name))
            try:
                store.status("racing")
            except NotFound:
                seen.append("not found")
            else:
                seen.append("whole")
        real_rmtree(path, **kwargs)

    monkeypatch.setattr(ingest_module.shutil, "rmtree", rmtree_with_a_reader_in_between)
    store.abort("racing")
    assert seen and set(seen) == {"not found"}, seen
    assert os.listdir(store.root / "ingest") == []


def test_status_of_an_ingest_removed_while_it_is_read_is_not_found(
    store: LocalContentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest goes (a commit, an abort) after its ref was read: NotFound, not corrupt."""
    with store.writer("going") as writer:
        writer.write(DATA)
    real_read_ref = ingest_module.IngestDir.read_ref

    def read_ref_then_lose_it(self: ingest_module.IngestDir) -> str:
        ref = real_read_ref(self)
        self.remove()
        return ref

    monkeypatch.setattr(ingest_module.IngestDir, "read_ref", read_ref_then_lose_it)
    with pytest.raises(NotFound, match="no ingest for ref 'going'"):
        store.status("going")


def _age(path: os.PathLike[str], seconds: float) -> None:
    stamp = os.stat(path).st_mtime - seconds
    os.utime(path, (stamp, stamp))


def test_cleanup_stale_ingests(store: LocalContentStore) -> None:
    for ref in ("old", "fresh", "old-but-busy"):
        with store.writer(ref) as writer:
            writer.write(b"x")
    ingest_root = store.root / "ingest"
    for ref in ("old", "old-but-busy"):
        _age(ingest_root / ingest_dir_name(ref) / "data", 7200)
    staging = ingest_root / ".tmp-leftover"
    staging.mkdir()
    _age(staging, 7200)
    busy = store.writer("old-but-busy")
    try:
        assert store.cleanup_stale_ingests(timedelta(hours=1)) == ["old"]
    finally:
        busy.close()
    assert not staging.exists()
    assert [s.ref for s in store.list_statuses()] == ["fresh", "old-but-busy"]


def test_racing_threads_get_exactly_one_writer(store: LocalContentStore) -> None:
    start = threading.Barrier(8)
    outcomes: list[str] = []
    winners: list[IngestWriter] = []

    def contend() -> None:
        start.wait()
        try:
            winners.append(store.writer("contended"))  # kept open: the others must lose
        except Unavailable:
            outcomes.append("refused")
        else:
            outcomes.append("won")

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    for writer in winners:
        writer.close()
    assert sorted(outcomes) == ["refused"] * 7 + ["won"]
