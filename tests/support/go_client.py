"""Our Go test client (tests/go/client), built on containerd's own client library.

`build_go_client` compiles it with ``go test -c`` from the pinned go.mod/go.sum
(modules come from the Go module proxy, then Go's caches) into the project's
test cache; the binary's name carries a hash of its sources, so worktrees with
different versions never overwrite each other's. `run_go_client` runs chosen
tests of it against a daemon.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[1] / "go" / "client"
CACHE_ENV = "PYCONTAINERD_GO_TOOLS"
DEFAULT_CACHE = Path("/var/cache/pycontainerd-test/go")
BUILD_TIMEOUT = 900.0


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_go_client() -> Path:
    """The test binary, built unless a build of these very sources is there."""
    cache = Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
    binary = cache / "tests" / f"goclient-{_source_hash()}.test"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError(
            "go is not on PATH: install Go (the developers' guide names the version)"
        )
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f".{binary.name}.{os.getpid()}")
    env = {
        **os.environ,
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
        "GOFLAGS": "-buildvcs=false -mod=readonly",
    }
    result = subprocess.run(
        [go, "test", "-c", "-o", str(partial), "."],
        cwd=SOURCE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the Go test client failed:\n{result.stderr}")
    os.replace(partial, binary)
    return binary


def run_go_client(
    binary: Path, tests: str, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the Go tests matching regular expression `tests` (verbose), with `env` added."""
    return subprocess.run(
        [str(binary), "-test.v", "-test.count=1", "-test.run", tests],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
