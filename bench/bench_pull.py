"""Pull and unpack from a loopback registry: pyctr and ctr against pycontainerd, beside
the real ctr against Debian's containerd, and ``tar -x`` of the same layers as the floor.
ctr 2 pulls through the daemon's Transfer service, against pycontainerd and against
containerd 2 (both ``ctr2`` and ``containerd2`` built from the module proxy).

Every pull is cold: the image is removed and garbage collected before the next
one, dirty pages of the previous run are flushed first, and no daemon is still
busy with what the removal left (pycontainerd deletes snapshot trees in the
background, after the removal has answered). Figures are MB/s of
uncompressed layer bytes over the pull's wall time (resolve, fetch, unpack),
best of two rounds.

Run alone with ``python -m bench pull``. To measure less: ``BENCH_ROUNDS`` (default 2),
``BENCH_PULL_ONLY`` (keep the contenders whose name contains it, e.g. ``ctr2``) and
``BENCH_PULL_IMAGES`` (comma-separated: ``busybox``, ``large-gzip``, ``large-zstd``,
``small-files-gzip``);
``BENCH_PULL_UNPACKS`` sets our daemon's ``max_concurrent_unpacks``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    Row,
    containerd_daemon,
    containerd_pid,
    print_table,
    pycontainerd_daemon,
    timed,
    wait_until_idle,
)
from pycontainerd.archive.compression import decompress_stream
from tests.support.images import Image, busybox_image, large_image, push_image
from tests.support.registry import TestRegistry

REPO_ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000
LARGE_SIZE = 400 * MB
LARGE_FILES = 400
LARGE_LAYERS = 5
SMALL_FILES = 50_000
SMALL_SIZE = 100 * MB
SMALL_LAYERS = 4
PULL_TIMEOUT = 300
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
ONLY = os.environ.get("BENCH_PULL_ONLY", "")
UNPACKS = os.environ.get("BENCH_PULL_UNPACKS", "")
IMAGES = [name for name in os.environ.get("BENCH_PULL_IMAGES", "").split(",") if name]
REFERENCE = "ctr images pull -> containerd"
REFERENCE2 = "ctr2 images pull -> containerd 2"
OURS_TRANSFER = "ctr2 images pull -> pycontainerd (Transfer)"


@dataclass(frozen=True)
class BenchImage:
    title: str
    ref: str
    image: Image
    uncompressed: int  # bytes of all the layers' tar streams


def _uncompressed_size(image: Image) -> int:
    total = 0
    buffer = bytearray(1 << 20)
    for layer in image.layers:
        with layer.open() as blob:
            stream = decompress_stream(blob)
            while n := stream.readinto(buffer):
                total += n
    return total


def _build(registry: TestRegistry, workdir: Path) -> list[BenchImage]:
    variants = [
        ("large", "gzip", LARGE_SIZE, LARGE_FILES, LARGE_LAYERS),
        ("large", "zstd", LARGE_SIZE, LARGE_FILES, LARGE_LAYERS),
        ("small-files", "gzip", SMALL_SIZE, SMALL_FILES, SMALL_LAYERS),
    ]
    built = []
    if not IMAGES or "busybox" in IMAGES:  # the small image: what a pull costs beyond the bytes
        small = busybox_image("oci", "gzip")
        pushed = push_image(registry, small, "bench/busybox")
        title = "pull + unpack: the small busybox image (1 layer, gzip)"
        built.append(BenchImage(title, pushed.ref, small, _uncompressed_size(small)))
    for name, compression, size, files, layers in variants:
        if IMAGES and f"{name}-{compression}" not in IMAGES:
            continue
        directory = workdir / f"{name}-{compression}"
        directory.mkdir()
        image = large_image(
            directory,
            total_size=size,
            file_count=files,
            layer_count=layers,
            compression=compression,
        )
        pushed = push_image(registry, image, f"bench/{name}-{compression}")
        title = (
            f"pull + unpack: {len(image.layers)} layers, {files} files, "
            f"{size // MB} MB uncompressed, {compression}"
        )
        built.append(BenchImage(title, pushed.ref, image, _uncompressed_size(image)))
    return built


# -- the contenders --------------------------------------------------------------------------


def _run(cmd: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("CONTAINERD_ADDRESS")}
    result = subprocess.run(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=PULL_TIMEOUT,
        env=env,
        cwd=REPO_ROOT,  # where `python -m ctr.main` finds the package
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr.decode(errors='replace')}")


def _ctr(address: Path, *args: str) -> list[str]:
    ctr = shutil.which("ctr")
    if ctr is None:
        raise RuntimeError("ctr is not installed: apt-get install containerd")
    return [ctr, "-a", str(address), *args]


def _ctr2(address: Path, *args: str) -> list[str]:
    ctr2 = shutil.which("ctr2")
    if ctr2 is None:
        raise RuntimeError("ctr2 is not installed: run scripts/go-tools.sh")
    return [ctr2, "-a", str(address), *args]


def _pyctr(address: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ctr.main", "-a", str(address), *args]


def _cold_pull(address: Path, pull_cmd: list[str], ref: str, settle: Callable[[], None]) -> float:
    """Seconds for one pull on an empty store; the image is removed and collected after.

    ``settle`` waits until no daemon is busy with what an earlier removal left.
    """
    os.sync()
    settle()
    try:
        return timed(lambda: _run(pull_cmd))
    finally:
        subprocess.run(
            _ctr(address, "images", "rm", "--sync", ref), capture_output=True, check=False
        )


def _layer_files(image: Image, workdir: Path) -> list[Path]:
    """Every layer as a file (small layers are kept in memory by the image builder)."""
    paths = []
    for number, layer in enumerate(image.layers):
        if layer.path is None:
            path = workdir / f"in-memory-layer-{number}"
            path.write_bytes(layer.read())
            paths.append(path)
        else:
            paths.append(layer.path)
    return paths


def _tar_extract(image: Image, workdir: Path, settle: Callable[[], None]) -> float:
    """Seconds for GNU tar to decompress and extract every layer in turn (no whiteouts)."""
    layers = _layer_files(image, workdir)
    target = Path(tempfile.mkdtemp(prefix="tar-x-", dir=workdir))
    os.sync()
    settle()
    try:
        return timed(lambda: [_run(["tar", "-xf", str(p), "-C", str(target)]) for p in layers])
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _pull_with(
    tool: str, address: Path, settle: Callable[[], None]
) -> Callable[[BenchImage], float]:
    """A cold pull-and-unpack of an image with ``tool`` (pyctr, ctr or ctr2) at ``address``."""
    command = {"pyctr": _pyctr, "ctr": _ctr, "ctr2": _ctr2}[tool]

    def measure(bench_image: BenchImage) -> float:
        pull = command(address, "images", "pull", "--plain-http", bench_image.ref)
        return _cold_pull(address, pull, bench_image.ref, settle)

    return measure


def _contenders(
    ours: Path,
    containerd: Path | None,
    containerd2: Path | None,
    workdir: Path,
    settle: Callable[[], None],
) -> dict[str, Callable[[BenchImage], float]]:
    contenders = {
        "pyctr images pull -> pycontainerd": _pull_with("pyctr", ours, settle),
        "ctr images pull -> pycontainerd": _pull_with("ctr", ours, settle),
        OURS_TRANSFER: _pull_with("ctr2", ours, settle),
    }
    if containerd is not None:
        contenders[REFERENCE] = _pull_with("ctr", containerd, settle)
    if containerd2 is not None:
        contenders[REFERENCE2] = _pull_with("ctr2", containerd2, settle)
    contenders["tar -x of the layers (floor)"] = lambda b: _tar_extract(b.image, workdir, settle)
    return {what: measure for what, measure in contenders.items() if ONLY in what}


def _rows(bench_image: BenchImage, seconds: dict[str, float]) -> list[Row]:
    def rate(elapsed: float) -> float:
        return bench_image.uncompressed / elapsed / MB

    def reference_of(what: str) -> tuple[float | None, str]:
        # ctr 2's rows compare with containerd 2, the others with containerd 1.6.
        name, label = (
            (REFERENCE2, "containerd 2") if "ctr2" in what else (REFERENCE, "containerd 1.6")
        )
        elapsed = seconds.get(name)
        return (rate(elapsed) if elapsed else None), label

    rows = []
    for what, elapsed in seconds.items():
        ref_rate, label = reference_of(what)
        rows.append(Row(f"{what} ({elapsed:.2f} s)", rate(elapsed), ref_rate, "MB/s", label))
    return rows


def _unpacks_config() -> str:
    if not UNPACKS:
        return ""
    return (
        f'[plugins."io.containerd.transfer.v1.local"]\n  max_concurrent_unpacks = {int(UNPACKS)}\n'
    )


@contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run() -> None:
    with _workdir() as workdir, TestRegistry() as registry:
        images = _build(registry, workdir)
        with (
            pycontainerd_daemon(extra_config=_unpacks_config()) as daemon,
            containerd_daemon() as containerd,
            containerd_daemon(2) as containerd2,
        ):
            pids = [daemon.proc.pid] + [
                containerd_pid(address) for address in (containerd, containerd2) if address
            ]
            contenders = _contenders(
                daemon.address, containerd, containerd2, workdir, lambda: wait_until_idle(pids)
            )
            for bench_image in images:
                # Best of ROUNDS, the contenders taking turns so that none is
                # always the one running while the machine is busy elsewhere.
                samples: dict[str, list[float]] = {what: [] for what in contenders}
                for _ in range(ROUNDS):
                    for what, measure in contenders.items():
                        samples[what].append(measure(bench_image))
                best = {what: min(times) for what, times in samples.items()}
                print_table(bench_image.title, _rows(bench_image, best))
