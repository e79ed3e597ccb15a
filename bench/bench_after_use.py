"""After real use: pycontainerd beside containerd 1.6 (Debian's) and containerd 2.x.

A fresh benchmark daemon flatters: what a user sees is the daemon after pulls
of large images and a few hundred containers. Each daemon (roots on a tmpfs,
one at a time, the order alternating between rounds) goes through the same
sequence, driven by the same client, Debian's ``ctr``:

1. pull four images (busybox, two large ones, a many-files one);
2. start 50 ``sleep`` containers 8 at a time: daemon RSS with 50 running,
   shim PSS in total and per container (our zygote and idle pool shims
   included), daemon CPU for the starts and the removals that follow;
3. create 100 containers 8 at a time, then time ``images ls`` and
   ``containers ls`` with them there, and remove them;
4. ``ctr run --rm true``, median and p90;
5. remove every image: daemon RSS idle at the end;
6. a cold pull of busybox, and ``ctr content get`` of a 256 MiB blob.

Run alone with ``python -m bench after_use``; BENCH_ROUNDS sets the rounds (2).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    Row,
    containerd_daemon,
    containerd_pid,
    cpu_seconds,
    pids_of,
    print_table,
    pss_kib,
    pycontainerd_daemon,
    rss_kib,
    timed,
    tmpfs_dir,
)
from tests.support.images import busybox_image, large_image, push_image
from tests.support.registry import TestRegistry

MB = 1_000_000
NAMESPACE = "bench"
RUNNING = 50
CREATED = 100
PARALLEL = 8
LIST_CALLS = 20
LATENCY_RUNS = 20
BLOB_SIZE = 256 << 20
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
TMPFS_SIZE = "12g"
OURS, CONTAINERD1, CONTAINERD2 = "pycontainerd", "containerd 1.6", "containerd 2.x"


@dataclass
class Contender:
    """One daemon as the sequence sees it: where it listens, its pid, its shims."""

    name: str
    address: Path
    pid: int
    shim_patterns: tuple[str, ...]

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ctr", "-a", str(self.address), "-n", NAMESPACE, *args],
            capture_output=True,
            check=check,
        )

    def shim_pss_mib(self) -> float:
        pids = {pid for pattern in self.shim_patterns for pid in pids_of(pattern)}
        return sum(pss_kib(pid) for pid in pids) / 1024


@dataclass
class Figures:
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)

    def get(self, key: str) -> float | None:
        values = self.samples.get(key)
        return statistics.mean(values) if values else None


@dataclass(frozen=True)
class Images:
    refs: tuple[str, ...]  # pulled in step 1
    small: str  # busybox: run, and pulled cold in step 6
    blob: Path
    blob_digest: str


# -- the daemons ---------------------------------------------------------------------


@contextlib.contextmanager
def _ours(base: Path) -> Iterator[Contender]:
    with pycontainerd_daemon(base=base) as daemon:
        assert daemon.proc is not None
        yield Contender(
            OURS,
            daemon.address,
            daemon.proc.pid,
            (
                f"pycontainerd.shim_v2.main -namespace {NAMESPACE} .*-address {daemon.address}( |$)",
                f"pycontainerd.shim_v2.zygote {daemon.state}/",
            ),
        )


def _containerd(version: int) -> Callable[[Path], AbstractContextManager[Contender | None]]:
    @contextlib.contextmanager
    def start(base: Path) -> Iterator[Contender | None]:
        with containerd_daemon(version, base=base) as address:
            if address is None:
                yield None
                return
            pid = containerd_pid(address)
            shims = (f"containerd2?-shim-runc-v2 -namespace {NAMESPACE} .*-address {address}( |$)",)
            yield Contender(CONTAINERD1 if version == 1 else CONTAINERD2, address, pid, shims)

    return start


DAEMONS: dict[str, Callable[[Path], AbstractContextManager[Contender | None]]] = {
    OURS: _ours,
    CONTAINERD1: _containerd(1),
    CONTAINERD2: _containerd(2),
}


# -- the sequence -------------------------------------------------------------------------


def _in_parallel(count: int, work: Callable[[int], object]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(work, range(count)))
    return time.perf_counter() - started


def _remove_containers(daemon: Contender) -> None:
    tasks = daemon.ctr("tasks", "ls", "-q", check=False).stdout.decode().split()
    for task in tasks:
        daemon.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)

    def remove(i: int) -> None:
        task = tasks[i]
        for _ in range(100):
            if daemon.ctr("tasks", "rm", task, check=False).returncode == 0:
                return
            time.sleep(0.05)

    _in_parallel(len(tasks), remove)
    containers = daemon.ctr("containers", "ls", "-q", check=False).stdout.decode().split()
    _in_parallel(len(containers), lambda i: daemon.ctr("containers", "rm", containers[i]))


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _p90_ms(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1] * 1000


def _sequence(daemon: Contender, images: Images, figures: Figures) -> None:
    for ref in images.refs:
        daemon.ctr("images", "pull", "--plain-http", ref)

    cpu_before = cpu_seconds(daemon.pid)
    start_wall = _in_parallel(
        RUNNING,
        lambda i: daemon.ctr("run", "-d", images.small, f"sleep-{i}", "sleep", "3600"),
    )
    cpu_started = cpu_seconds(daemon.pid)
    time.sleep(1)  # let start-up work (pool shims, trims) settle before measuring
    figures.add("rss_running", rss_kib(daemon.pid) / 1024)
    shims = daemon.shim_pss_mib()
    figures.add("shim_total", shims)
    figures.add("shim_each", shims / RUNNING)
    figures.add("start_rate", RUNNING / start_wall)
    _remove_containers(daemon)
    cpu_done = cpu_seconds(daemon.pid)
    figures.add("cpu_start", (cpu_started - cpu_before) * 1000 / RUNNING)
    figures.add("cpu_start_remove", (cpu_done - cpu_before) * 1000 / RUNNING)

    create_wall = _in_parallel(
        CREATED, lambda i: daemon.ctr("containers", "create", images.small, f"created-{i}")
    )
    figures.add("create_rate", CREATED / create_wall)
    for what in ("images", "containers"):
        calls = [timed(lambda what=what: daemon.ctr(what, "ls")) for _ in range(LIST_CALLS)]
        figures.add(f"{what}_ls", _median_ms(calls))
        figures.add(f"{what}_ls_p90", _p90_ms(calls))
    _remove_containers(daemon)

    runs = [
        timed(lambda i=i: daemon.ctr("run", "--rm", images.small, f"rm-{i}", "true"))
        for i in range(LATENCY_RUNS)
    ]
    figures.add("run_rm", _median_ms(runs))
    figures.add("run_rm_p90", _p90_ms(runs))

    for ref in images.refs:
        daemon.ctr("images", "rm", "--sync", ref, check=False)
    _wait_for_no_shims(daemon)
    time.sleep(12)  # longer than our heap trimmer's period: what the user sees idle
    figures.add("rss_idle", rss_kib(daemon.pid) / 1024)
    figures.add("helpers_idle", daemon.shim_pss_mib())

    os.sync()
    figures.add(
        "pull_small",
        timed(lambda: daemon.ctr("images", "pull", "--plain-http", images.small)) * 1000,
    )
    with images.blob.open("rb") as stdin:
        subprocess.run(
            ["ctr", "-a", str(daemon.address), "-n", NAMESPACE, "content", "ingest",
             "--expected-digest", images.blob_digest, "bench-blob"],
            stdin=stdin, check=True, capture_output=True,
        )  # fmt: skip
    get = timed(
        lambda: subprocess.run(
            ["ctr", "-a", str(daemon.address), "-n", NAMESPACE, "content", "get", images.blob_digest],
            check=True, stdout=subprocess.DEVNULL,
        )
    )  # fmt: skip
    figures.add("content_get", BLOB_SIZE / get / MB)


def _wait_for_no_shims(daemon: Contender, timeout: float = 60.0) -> None:
    """Until only helpers that stay by design (our zygote) are left."""
    deadline = time.monotonic() + timeout
    while pids_of(daemon.shim_patterns[0]) and time.monotonic() < deadline:
        time.sleep(0.2)


# -- set-up --------------------------------------------------------------------------------


def _build_images(registry: TestRegistry, work: Path) -> Images:
    small = push_image(registry, busybox_image("oci", "gzip"), "bench/busybox").ref
    refs = [small]
    for name, size, files, layers, compression in (
        ("large-gzip", 600 * MB, 600, 5, "gzip"),
        ("large-zstd", 300 * MB, 300, 3, "zstd"),
        ("many-files", 100 * MB, 20_000, 4, "gzip"),
    ):
        directory = work / name
        directory.mkdir()
        image = large_image(
            directory,
            total_size=size,
            file_count=files,
            layer_count=layers,
            compression=compression,
        )
        refs.append(push_image(registry, image, f"bench/{name}").ref)
    blob = work / "blob"
    blob.write_bytes(os.urandom(BLOB_SIZE))
    digest = "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
    return Images(tuple(refs), small, blob, digest)


# -- the report --------------------------------------------------------------------------

ROWS: tuple[tuple[str, str, str], ...] = (
    ("rss_running", f"daemon RSS with {RUNNING} running, after the pulls", "MiB"),
    ("rss_idle", "daemon RSS idle at the end (everything removed)", "MiB"),
    ("cpu_start_remove", "daemon CPU per container start + removal", "ms"),
    ("cpu_start", "daemon CPU per container start", "ms"),
    ("shim_total", f"shim PSS total, {RUNNING} running (helpers included)", "MiB"),
    ("shim_each", "shim PSS per running container", "MiB"),
    ("helpers_idle", "shim/zygote PSS left when idle", "MiB"),
    ("start_rate", f"{RUNNING} containers started {PARALLEL} at a time", "c/s"),
    ("create_rate", f"{CREATED} containers created {PARALLEL} at a time", "c/s"),
    ("images_ls", f"ctr images ls with {CREATED} containers, median", "ms"),
    ("images_ls_p90", "ctr images ls, p90", "ms"),
    ("containers_ls", f"ctr containers ls with {CREATED} containers, median", "ms"),
    ("containers_ls_p90", "ctr containers ls, p90", "ms"),
    ("run_rm", f"ctr run --rm true, median of {LATENCY_RUNS}", "ms"),
    ("run_rm_p90", f"ctr run --rm true, p90 of {LATENCY_RUNS}", "ms"),
    ("pull_small", "cold pull of the small busybox image", "ms"),
    ("content_get", f"ctr content get of a {BLOB_SIZE >> 20} MiB blob", "MB/s"),
)


def _report(figures: dict[str, Figures]) -> None:
    ours = figures[OURS]
    for reference in (CONTAINERD2, CONTAINERD1):
        theirs = figures.get(reference)
        rows = []
        for key, what, unit in ROWS:
            value = ours.get(key)
            if value is None:
                continue
            rows.append(Row(what, value, theirs.get(key) if theirs else None, unit, reference))
        print_table(f"after real use, {ROUNDS} rounds (ratio: pycontainerd / {reference})", rows)


def run() -> None:
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-after-")))
        registry = stack.enter_context(TestRegistry())
        images = _build_images(registry, work)
        roots = stack.enter_context(tmpfs_dir(TMPFS_SIZE))
        figures: dict[str, Figures] = {}
        order = list(DAEMONS)
        for round_number in range(ROUNDS):
            for name in order if round_number % 2 == 0 else reversed(order):
                with DAEMONS[name](roots) as daemon:
                    if daemon is None:
                        continue
                    _sequence(daemon, images, figures.setdefault(name, Figures()))
    _report(figures)
